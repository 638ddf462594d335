#include "channels/factories.h"

namespace FMI::Comm {

const std::vector<BuiltinChannel>& builtin_channels() {
  static const std::vector<BuiltinChannel> list = {
#ifdef FMI_WITH_DIRECT
      {"Direct", [](const Config& c) { return c.direct.enabled; }, &make_direct_channel},
#endif
#ifdef FMI_WITH_REDIS
      {"Redis", [](const Config& c) { return c.redis.enabled; }, &make_redis_channel},
#endif
#ifdef FMI_WITH_S3
      {"S3", [](const Config& c) { return c.s3.enabled; }, &make_s3_channel},
#endif
  };
  return list;
}

}  // namespace FMI::Comm
