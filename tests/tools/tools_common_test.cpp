// The tools' shared helpers (tools/common): the list, size and operation parsers
// behind --sizes/--ops/--channels, and the two size formats (tables and bench rows).
#include <gtest/gtest.h>

#include <stdexcept>
#include <string>
#include <vector>

#include "fmi/errors.h"
#include "tools/common/cli.h"
#include "tools/common/operation.h"

namespace {

using FMI::Utils::Operation;

TEST(ToolsCommon, Parsers) {
  EXPECT_EQ(FMI::Tools::parse_size("8"), 8u);
  EXPECT_EQ(FMI::Tools::parse_size("1K"), 1024u);
  EXPECT_EQ(FMI::Tools::parse_size("64M"), 64u << 20);
  EXPECT_EQ(FMI::Tools::parse_size("1.5KiB"), 1536u);
  EXPECT_THROW(FMI::Tools::parse_size<FMI::UsageError>("12Q"), FMI::UsageError);
  EXPECT_EQ(FMI::Tools::format_size(64u << 20), "64 MiB");
  EXPECT_EQ(FMI::Tools::parse_operation("reduce_scatter"), Operation::reduce_scatter);
  EXPECT_THROW(FMI::Tools::parse_operation("bogus"), FMI::UsageError);
  EXPECT_EQ(FMI::Tools::split_list("8,1K,,64M,"), (std::vector<std::string>{"8", "1K", "64M"}));
  EXPECT_TRUE(FMI::Tools::split_list("").empty());
}

// The baselines do not link FMI: by default a bad size is a std::invalid_argument
// naming the text.
TEST(ToolsCommon, SizesWithoutFmi) {
  EXPECT_EQ(FMI::Tools::parse_size("2 GB"), std::size_t(2) << 30);
  EXPECT_EQ(FMI::Tools::parse_size("7b"), 7u);
  try {
    FMI::Tools::parse_size("-1K");
    ADD_FAILURE() << "a negative size was accepted";
  } catch (const std::invalid_argument& e) {
    EXPECT_NE(std::string(e.what()).find("'-1K'"), std::string::npos) << e.what();
  }
  EXPECT_THROW(FMI::Tools::parse_size("K"), std::invalid_argument);
  EXPECT_THROW(FMI::Tools::parse_size(""), std::invalid_argument);
  EXPECT_EQ(FMI::Tools::parse_sizes("8,1K,64M"),
            (std::vector<std::size_t>{8, 1024, std::size_t(64) << 20}));
  EXPECT_EQ(FMI::Tools::split("a b  c", ' '), (std::vector<std::string>{"a", "b", "c"}));
}

TEST(ToolsCommon, SizeFormats) {
  EXPECT_EQ(FMI::Tools::format_size(8), "8 B");
  EXPECT_EQ(FMI::Tools::format_size(1536), "1.5 KiB");
  // The bench rows: exact, and read back by parse_size.
  for (std::size_t b : {std::size_t(8), std::size_t(1000), std::size_t(1024), std::size_t(3) << 20,
                        std::size_t(1) << 30, std::size_t(1025)})
    EXPECT_EQ(FMI::Tools::parse_size(FMI::Tools::format_size_compact(b)), b) << b;
  EXPECT_EQ(FMI::Tools::format_size_compact(64u << 20), "64M");
  EXPECT_EQ(FMI::Tools::format_size_compact(1025), "1025");
}

}  // namespace
