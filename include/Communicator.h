// Compatibility header: the original FMI API is included as <Communicator.h>.
#pragma once
#include "fmi/fmi.h"
