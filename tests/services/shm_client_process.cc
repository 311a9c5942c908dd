// A same-node client in a process of its own, for tests of what a store does when a client
// dies: creates a region of argv[3] bytes, attaches it to the store at argv[1] as tenant
// argv[2], prints "attached <region id in hex>", fills the region with 0x5a, then waits to be
// killed.
#include <unistd.h>

#include <cstdio>
#include <cstdlib>
#include <cstring>

#include "absl/strings/escaping.h"
#include "client/shared_memory_region.h"

int main(int argc, char** argv) {
  if (argc != 4) {
    std::fprintf(stderr, "usage: %s SOCKET TENANT BYTES\n", argv[0]);
    return 2;
  }
  auto region = kvtier::SharedMemoryRegion::Create(std::strtoull(argv[3], nullptr, 10));
  if (!region.ok()) {
    std::fprintf(stderr, "%s\n", std::string(region.status().message()).c_str());
    return 1;
  }
  auto id = (*region)->AttachTo(argv[1], argv[2], "", absl::Seconds(5));
  if (!id.ok()) {
    std::fprintf(stderr, "%s\n", std::string(id.status().message()).c_str());
    return 1;
  }
  std::printf("attached %s\n", absl::BytesToHexString(*id).c_str());
  std::fflush(stdout);
  while (true) std::memset((*region)->data(), 0x5a, (*region)->size());
}
