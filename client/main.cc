// prunectl: the command-line client of prunerd (see client/commands.h and exit_codes.h).
#include <string>
#include <vector>

#include "client/commands.h"

int main(int argc, char** argv) {
  return prunerd::RunPrunectl(std::vector<std::string>(argv + 1, argv + argc));
}
