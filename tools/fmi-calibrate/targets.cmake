# The fmi-calibrate target. Included from this folder's CMakeLists.txt and, while
# tools/CMakeLists.txt does not list fmi-calibrate, from tools/fmi-model's.
if(NOT TARGET fmi-calibrate)
  find_package(CLI11 REQUIRED)
  include(GNUInstallDirs)
  add_executable(fmi-calibrate ${CMAKE_CURRENT_LIST_DIR}/fmi_calibrate.cpp)
  target_compile_features(fmi-calibrate PRIVATE cxx_std_20)
  target_compile_options(fmi-calibrate PRIVATE -Wall -Wextra)
  target_link_libraries(fmi-calibrate PRIVATE FMI CLI11::CLI11 nlohmann_json::nlohmann_json)
  install(TARGETS fmi-calibrate RUNTIME DESTINATION ${CMAKE_INSTALL_BINDIR})
endif()
