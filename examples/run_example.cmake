# cmake -DEXAMPLE=<path> -P run_example.cmake
# Runs the example; fails unless it exits 0 and its last line is "done".
execute_process(COMMAND ${EXAMPLE}
  RESULT_VARIABLE rc OUTPUT_VARIABLE out ERROR_VARIABLE err)
message("${out}")
if(err)
  message("stderr:\n${err}")
endif()
if(NOT rc STREQUAL "0")
  message(FATAL_ERROR "callout-example exited with '${rc}'")
endif()
if(NOT out MATCHES "(^|\n)done\n$")
  message(FATAL_ERROR "callout-example output does not end with a \"done\" line")
endif()
