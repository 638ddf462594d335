// Compatibility header: <fmi.h> includes the whole public API.
#pragma once
#include "fmi/fmi.h"
