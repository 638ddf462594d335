# fmi-calibrate end to end without servers: measure the in-process channels,
# write a config, and check that it loads (fmi-model reads it back).
# Variables: CALIBRATE, MODEL (executables), CONFIG (starting config), OUT.
file(REMOVE ${OUT})
execute_process(COMMAND ${CALIBRATE} --config ${CONFIG} --inproc --out ${OUT}
                        --sizes 8,1M,16M --reps 5
                RESULT_VARIABLE rc OUTPUT_VARIABLE out ERROR_VARIABLE err)
message("${out}${err}")
if(NOT rc EQUAL 0)
  message(FATAL_ERROR "fmi-calibrate failed with ${rc}")
endif()
if(NOT out MATCHES "Direct: overhead [0-9.e+-]+ ms, bandwidth [0-9.e+-]+ MiB/s")
  message(FATAL_ERROR "fmi-calibrate did not report a Direct fit")
endif()
if(NOT out MATCHES "bandwidth_multiple [0-9.e+-]+ MiB/s")
  message(FATAL_ERROR "fmi-calibrate did not report Redis's bandwidth_multiple")
endif()
# Issue 16: the tool reads its output back (it exits 1 if the model would get
# other values than the fit) and prints each measurement next to the prediction.
if(NOT out MATCHES "Direct: measured one way vs the model's latency")
  message(FATAL_ERROR "fmi-calibrate did not compare its measurements with the model")
endif()
if(NOT out MATCHES "1 MiB: measured [0-9.e+-]+ ms, model [0-9.e+-]+ ms")
  message(FATAL_ERROR "fmi-calibrate did not print measured next to predicted")
endif()
file(READ ${OUT} written)
string(JSON bw GET "${written}" model Direct bandwidth)
string(JSON price GET "${written}" model Direct vm_price)
if(price STREQUAL "" OR bw STREQUAL "")
  message(FATAL_ERROR "written config lacks model.Direct fields")
endif()
execute_process(COMMAND ${MODEL} --config ${OUT} -n 4 --ops bcast --sizes 8
                RESULT_VARIABLE rc OUTPUT_VARIABLE table ERROR_VARIABLE err)
if(NOT rc EQUAL 0)
  message(FATAL_ERROR "fmi-model cannot use the calibrated config: ${err}")
endif()
message("${table}")
