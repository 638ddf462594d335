// The whole public API of FMI, the FaaS Message Interface.
#pragma once
#include "fmi/channel.h"
#include "fmi/communicator.h"
#include "fmi/config.h"
#include "fmi/data.h"
#include "fmi/errors.h"
#include "fmi/function.h"
#include "fmi/inproc.h"
#include "fmi/policy.h"
#include "fmi/request.h"
#include "fmi/types.h"
