// Parsing an operation name for the tools that link FMI (fmi-model, fmi-bench):
// this header uses the public API (fmi/types.h), unlike cli.h.
#pragma once

#include <string>

#include "fmi/errors.h"
#include "fmi/types.h"

namespace FMI::Tools {

/// The operation printed as `name` by to_string(Operation). Throws UsageError.
inline Utils::Operation parse_operation(const std::string& name) {
  for (int i = int(Utils::Operation::send); i <= int(Utils::Operation::reduce_scatter); ++i) {
    const auto op = static_cast<Utils::Operation>(i);
    if (name == Utils::to_string(op)) return op;
  }
  FMI_THROW(UsageError, "unknown operation '", name,
            "' (send, bcast, barrier, gather, scatter, reduce, allreduce, scan, allgather, "
            "alltoall, reduce_scatter)");
}

}  // namespace FMI::Tools
