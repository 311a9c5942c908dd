// MetricFamilies: builds the families a scrape-time prometheus::Collectable returns, from
// plain values read off an engine's stats. Series of one family must be added back to
// back; the first one's help text names the family.
#ifndef KVTIER_SERVICES_METRIC_FAMILIES_H_
#define KVTIER_SERVICES_METRIC_FAMILIES_H_

#include <prometheus/metric_family.h>

#include <string>
#include <utility>
#include <vector>

namespace kvtier {

class MetricFamilies {
 public:
  using Labels = std::vector<prometheus::ClientMetric::Label>;

  void Add(const char* name, const char* help, prometheus::MetricType type, double value,
           Labels labels = {}) {
    prometheus::ClientMetric m;
    m.label = std::move(labels);
    if (type == prometheus::MetricType::Counter) {
      m.counter.value = value;
    } else {
      m.gauge.value = value;
    }
    if (!families_.empty() && families_.back().name == name) {
      families_.back().metric.push_back(std::move(m));
      return;
    }
    families_.push_back(prometheus::MetricFamily{name, help, type, {std::move(m)}});
  }
  std::vector<prometheus::MetricFamily> Take() { return std::move(families_); }

 private:
  std::vector<prometheus::MetricFamily> families_;
};

}  // namespace kvtier

#endif  // KVTIER_SERVICES_METRIC_FAMILIES_H_
