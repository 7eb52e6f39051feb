# Builds the man page from `uvhttpd --help`, so the two never disagree.
# Usage: cmake -DUVHTTPD=path/to/uvhttpd -DOUT=uvhttpd.1 -P docs/man.cmake
execute_process(COMMAND ${UVHTTPD} --help OUTPUT_VARIABLE help RESULT_VARIABLE rc)
if(NOT rc EQUAL 0)
  message(FATAL_ERROR "uvhttpd --help failed")
endif()
execute_process(COMMAND ${UVHTTPD} --version OUTPUT_VARIABLE version OUTPUT_STRIP_TRAILING_WHITESPACE)
# troff: a leading '.' or "'" starts a request, and '\' escapes.
string(REPLACE "\\" "\\e" help "${help}")
string(REGEX REPLACE "\n([.'])" "\n\\\\&\\1" help "${help}")
file(WRITE ${OUT} ".TH UVHTTPD 1 \"\" \"${version}\" \"User Commands\"
.SH NAME
uvhttpd \\- a fast, correct HTTP/1.1 file server
.SH SYNOPSIS
.B uvhttpd
[\\fIPORT\\fR] [\\fIoptions\\fR]
.SH DESCRIPTION
Serves a directory over HTTP/1.1: GET and HEAD of files and listings with
validators, conditional requests, ranges and precompressed variants; PUT,
DELETE and MKCOL; a durable record store at /database.txt; health,
readiness and Prometheus metrics endpoints. One event loop; file work on a
thread pool.
.SH OPTIONS
.nf
${help}.fi
.SH SIGNALS
SIGTERM and SIGINT drain and stop (exit 0); a second one closes every
connection at once. SIGHUP reopens the access log.
.SH FILES
/lib/systemd/system/uvhttpd.service, /lib/systemd/system/uvhttpd.socket
.SH SEE ALSO
The README and docs/operations.md in the source tree.
")
