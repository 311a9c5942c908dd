#include "worker/restore_uploader.h"

#include "absl/strings/str_cat.h"
#include "kernels/backend.h"

namespace kvtier::worker {

absl::StatusOr<std::unique_ptr<CudaRestoreUploader>> CudaRestoreUploader::Create(
    const kernels::PagePoolBytes& staging, const kernels::PagePoolBytes& device,
    std::vector<uint32_t> pages, uint32_t num_layers, void* stream,
    kernels::CudaWorkspace* workspace) {
  if (pages.size() > staging.num_pages) {
    return absl::InvalidArgumentError(absl::StrCat("restore upload: ", pages.size(),
                                                   " blocks but staging for ", staging.num_pages));
  }
  if (staging.page_bytes != device.page_bytes) {
    return absl::InvalidArgumentError("restore upload: staging and pages differ in size");
  }
  std::vector<kernels::CudaEvent> events;
  events.reserve(num_layers);
  for (uint32_t l = 0; l < num_layers; ++l) {
    absl::StatusOr<kernels::CudaEvent> event = kernels::CudaEvent::Create();
    if (!event.ok()) return event.status();
    events.push_back(*std::move(event));
  }
  return std::unique_ptr<CudaRestoreUploader>(new CudaRestoreUploader(
      staging, device, std::move(pages), std::move(events), stream, workspace));
}

CudaRestoreUploader::CudaRestoreUploader(const kernels::PagePoolBytes& staging,
                                         const kernels::PagePoolBytes& device,
                                         std::vector<uint32_t> pages,
                                         std::vector<kernels::CudaEvent> events, void* stream,
                                         kernels::CudaWorkspace* workspace)
    : staging_(staging),
      device_(device),
      pages_(std::move(pages)),
      layer_done_(std::move(events)),
      options_{.stream = stream, .workspace = workspace} {}

absl::Status CudaRestoreUploader::Copy(uint32_t block, uint64_t offset, uint64_t length) {
  if (block >= pages_.size()) {
    return absl::OutOfRangeError(absl::StrCat("restore upload: no block ", block));
  }
  pending_.push_back(
      {.src_page = block, .dst_page = pages_[block], .offset = offset, .length = length});
  return absl::OkStatus();
}

absl::Status CudaRestoreUploader::LayerQueued(uint32_t layer) {
  if (layer >= layer_done_.size()) {
    return absl::OutOfRangeError(absl::StrCat("restore upload: no layer ", layer));
  }
  absl::Status s = kernels::MovePagesCuda(staging_, device_, pending_, options_);
  pending_.clear();
  if (!s.ok()) return s;
  return layer_done_[layer].Record(options_.stream);
}

absl::Status CudaRestoreUploader::WaitLayer(uint32_t layer) {
  if (layer >= layer_done_.size()) {
    return absl::OutOfRangeError(absl::StrCat("restore upload: no layer ", layer));
  }
  return layer_done_[layer].Synchronize();
}

absl::Status CudaRestoreUploader::Drain() { return kernels::CudaSynchronize(options_.stream); }

}  // namespace kvtier::worker
