// The Catch2 entry point for handlers_tests; the cases live in one file per
// source file (records/record_store_test.cpp tests handlers/records/record_store.cpp,
// multipart_test.cpp tests protocol/multipart.cpp).
#define CATCH_CONFIG_MAIN
#include <catch2/catch.hpp>
