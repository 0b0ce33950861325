# Writes OUT (a header defining SC_VERSION) from `git describe` of SRC, at every build, touching
# the file only when the version changed (so nothing recompiles otherwise).
execute_process(COMMAND git describe --always --dirty --tags
                WORKING_DIRECTORY "${SRC}" OUTPUT_VARIABLE version
                OUTPUT_STRIP_TRAILING_WHITESPACE ERROR_QUIET RESULT_VARIABLE rc)
if(NOT rc EQUAL 0 OR version STREQUAL "")
  set(version "unknown")
endif()
set(text "#define SC_VERSION \"${version}\"\n")
if(EXISTS "${OUT}")
  file(READ "${OUT}" old)
endif()
if(NOT old STREQUAL text)
  file(WRITE "${OUT}" "${text}")
endif()
