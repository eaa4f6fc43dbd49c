# cmake -DSRC=<libcallout> -DBIN=<scratch dir> -DMODE=add_subdirectory|FetchContent
#       -DGENERATOR=<generator> -P subproject.cmake
# Configures tests/subproject/ against SRC, builds it and runs its three
# consumers, each of which must print "ok".
foreach(v SRC BIN MODE GENERATOR)
  if(NOT DEFINED ${v})
    message(FATAL_ERROR "subproject.cmake: -D${v}= is required")
  endif()
endforeach()
file(REMOVE_RECURSE ${BIN})
execute_process(COMMAND ${CMAKE_COMMAND} -S ${SRC}/tests/subproject -B ${BIN} -G ${GENERATOR}
                        -DCALLOUT_SOURCE_DIR=${SRC} -DMODE=${MODE} -DCMAKE_BUILD_TYPE=Release
                RESULT_VARIABLE rc)
if(NOT rc EQUAL 0)
  message(FATAL_ERROR "configuring the ${MODE} consumer failed")
endif()
execute_process(COMMAND ${CMAKE_COMMAND} --build ${BIN} -j 2 RESULT_VARIABLE rc)
if(NOT rc EQUAL 0)
  message(FATAL_ERROR "building the ${MODE} consumer failed")
endif()
foreach(exe consumer_c consumer_cpp consumer_static)
  execute_process(COMMAND ${BIN}/${exe} RESULT_VARIABLE rc OUTPUT_VARIABLE out)
  string(STRIP "${out}" out)
  if(NOT rc EQUAL 0 OR NOT out MATCHES "(^|\n)ok$")
    message(FATAL_ERROR "${MODE}: ${exe} exited ${rc}, printed '${out}'")
  endif()
  message(STATUS "${MODE}: ${exe}: ok")
endforeach()
file(REMOVE_RECURSE ${BIN})
