# Finds a Python interpreter that has moto (the S3 server of the tests and of
# bench_s3): $FMI_MOTO_PYTHON, pyenv's python3, python3 on PATH. Sets the cache
# entry FMI_MOTO_PYTHON (empty when none: the fixture then fails with a clear message).
if(FMI_MOTO_PYTHON)
  return()
endif()
set(_fmi_found "")
foreach(_py $ENV{FMI_MOTO_PYTHON} /root/.pyenv/shims/python3 python3)
  find_program(_fmi_py_path NAMES ${_py} NO_CACHE)
  if(_fmi_py_path)
    execute_process(COMMAND ${_fmi_py_path} -c "import moto.server"
                    RESULT_VARIABLE _rc OUTPUT_QUIET ERROR_QUIET)
    if(_rc EQUAL 0)
      set(_fmi_found ${_fmi_py_path})
      break()
    endif()
  endif()
  unset(_fmi_py_path)
endforeach()
set(FMI_MOTO_PYTHON "${_fmi_found}" CACHE STRING "Python interpreter with moto (S3 tests)" FORCE)
if(_fmi_found)
  message(STATUS "S3 tests: moto server via ${_fmi_found}")
else()
  message(WARNING "S3 tests: no Python with moto found (pip install 'moto[server]' or set "
                  "FMI_MOTO_PYTHON); the S3 tests will fail with that message")
endif()
