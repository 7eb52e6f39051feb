// The Catch2 entry point for protocol_tests; the cases live in one file per
// source file under protocol/.
#define CATCH_CONFIG_MAIN
#include <catch2/catch.hpp>
