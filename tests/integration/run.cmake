# Builds and runs one consumer project of FMI from scratch (ctest script, cmake -P).
#   -DKIND=subdirectory|installed -DFMI_ROOT=<repo> -DINTEGRATION_DIR=<this folder>
#   -DWORK_DIR=<scratch folder, wiped> [-DGENERATOR=Ninja] [-DCXX=<compiler>]
# subdirectory: configures tests/integration/subdirectory (add_subdirectory(FMI)).
# installed:    configures and builds FMI alone, installs it into WORK_DIR/prefix,
#               then configures tests/integration/installed (find_package(FMI)).
# Then runs the program with 1 and with 3 peers and a config without backends.
cmake_minimum_required(VERSION 3.18)

foreach(v KIND FMI_ROOT INTEGRATION_DIR WORK_DIR)
  if(NOT DEFINED ${v})
    message(FATAL_ERROR "run.cmake: -D${v}=... is required")
  endif()
endforeach()

# Minimal FMI: no network channels, no tests/bench/examples/tools.
set(fmi_options
  -DCMAKE_BUILD_TYPE=Release
  -DFMI_BUILD_TESTS=OFF -DFMI_BUILD_BENCH=OFF -DFMI_BUILD_EXAMPLES=OFF -DFMI_BUILD_TOOLS=OFF
  -DFMI_WITH_REDIS=OFF -DFMI_WITH_S3=OFF -DFMI_WITH_DIRECT=OFF)
set(gen_args)
if(GENERATOR)
  list(APPEND gen_args -G ${GENERATOR})
endif()
if(CXX)
  list(APPEND gen_args -DCMAKE_CXX_COMPILER=${CXX})
endif()

function(step what)
  message(STATUS "[${KIND}] ${what}: ${ARGN}")
  execute_process(COMMAND ${ARGN} RESULT_VARIABLE rc)
  if(NOT rc EQUAL 0)
    message(FATAL_ERROR "[${KIND}] ${what} failed (${rc})")
  endif()
endfunction()

file(REMOVE_RECURSE ${WORK_DIR})
file(MAKE_DIRECTORY ${WORK_DIR})

if(KIND STREQUAL "subdirectory")
  step("configure consumer" ${CMAKE_COMMAND} -S ${INTEGRATION_DIR}/subdirectory
       -B ${WORK_DIR}/app ${gen_args} -DFMI_DIR=${FMI_ROOT} ${fmi_options})
  step("build consumer" ${CMAKE_COMMAND} --build ${WORK_DIR}/app -j2)
  set(app ${WORK_DIR}/app/fmi_app_subdirectory)
elseif(KIND STREQUAL "installed")
  step("configure FMI" ${CMAKE_COMMAND} -S ${FMI_ROOT} -B ${WORK_DIR}/fmi ${gen_args}
       ${fmi_options} -DCMAKE_INSTALL_PREFIX=${WORK_DIR}/prefix)
  step("build FMI" ${CMAKE_COMMAND} --build ${WORK_DIR}/fmi -j2)
  step("install FMI" ${CMAKE_COMMAND} --install ${WORK_DIR}/fmi --prefix ${WORK_DIR}/prefix)
  step("configure consumer" ${CMAKE_COMMAND} -S ${INTEGRATION_DIR}/installed -B ${WORK_DIR}/app
       ${gen_args} -DCMAKE_BUILD_TYPE=Release -DCMAKE_PREFIX_PATH=${WORK_DIR}/prefix)
  step("build consumer" ${CMAKE_COMMAND} --build ${WORK_DIR}/app -j2)
  set(app ${WORK_DIR}/app/fmi_app_installed)
else()
  message(FATAL_ERROR "run.cmake: KIND must be subdirectory or installed, not '${KIND}'")
endif()

foreach(n 1 3)
  step("run with ${n} peer(s)" ${app} ${INTEGRATION_DIR}/app/fmi-no-backends.json ${n})
endforeach()
message(STATUS "[${KIND}] OK")
