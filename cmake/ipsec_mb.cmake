# fmi_use_ipsec_mb(target): AES-256-GCM on VAES/VPCLMULQDQ CPUs through Intel's
# ipsec-mb (Debian libipsec-mb-dev, scripts/install-deps.sh), about twice OpenSSL
# 3.0's code there (src/channels/direct/secure.h "Impl"). Links its shared library
# (the -dev package has only the static one: 15 MB more per binary). Without it (or
# off x86-64) the target uses OpenSSL alone.
function(fmi_use_ipsec_mb target)
  find_path(FMI_IPSEC_MB_INCLUDE intel-ipsec-mb.h)
  find_library(FMI_IPSEC_MB_LIB NAMES libIPSec_MB.so.1 IPSec_MB)
  if(FMI_IPSEC_MB_INCLUDE AND FMI_IPSEC_MB_LIB AND CMAKE_SYSTEM_PROCESSOR MATCHES "x86_64|AMD64")
    target_include_directories(${target} PRIVATE ${FMI_IPSEC_MB_INCLUDE})
    target_link_libraries(${target} PRIVATE ${FMI_IPSEC_MB_LIB})
    target_compile_definitions(${target} PRIVATE FMI_WITH_IPSEC_MB)
    message(STATUS "${target}: AES-256-GCM through ipsec-mb where the CPU has VAES (${FMI_IPSEC_MB_LIB})")
  endif()
endfunction()
