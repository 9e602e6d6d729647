// File: fake_job_runner.h
//
// A JobRunner for tests of the scheduler and the service without torch. It walks through
// `layers` prune layers, reporting progress at each boundary exactly like the engine (and
// stopping with CancelledError when the callback returns false), writes a tiny model
// (config.json + model.safetensors with fixed bytes) into options.output_dir, and returns a
// report with the spec, the sparsity and both perplexities. In gated mode each layer waits for a
// permit (AllowLayers), so tests can cancel or drain at a known layer.
//
//   FakeJobRunner runner;
//   runner.SetScript({.layers = 3, .gated = true});
//   ... submit ...
//   runner.WaitForRuns(1);       // a run has entered the runner
//   runner.AllowLayers(1);       // layer 0 proceeds
//
// Thread-safety: all methods are safe from any thread.
#pragma once

#include <fstream>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/strings/str_cat.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/clock.h"
#include "core/api/job_spec.h"
#include "server/job_runner.h"

namespace prunerd {

class FakeJobRunner : public JobRunner {
 public:
  struct Script {
    int layers = 3;
    bool gated = false;  // each layer waits for a permit
    absl::Duration layer_time = absl::ZeroDuration();
    absl::Status fail_with = absl::OkStatus();  // returned at fail_at_layer
    int fail_at_layer = 0;
    double ppl_dense = 20.0;
    double ppl_pruned = 25.0;
    int eval_ticks = 0;  // extra eval progress reports (throttling tests)
  };

  void SetScript(Script s) {
    absl::MutexLock l(&mu_);
    script_ = std::move(s);
  }
  void AllowLayers(int n) {
    absl::MutexLock l(&mu_);
    permits_ += n;
  }
  // Waits until at least n runs have started (false after 20 s).
  bool WaitForRuns(int n) {
    absl::MutexLock l(&mu_);
    auto cond = [this, n]() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) { return runs_ >= n; };
    return mu_.AwaitWithTimeout(absl::Condition(&cond), absl::Seconds(20));
  }
  // Waits until a run is blocked waiting for a permit (gated mode).
  bool WaitForBlocked() {
    absl::MutexLock l(&mu_);
    auto cond = [this]() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) { return blocked_ > 0; };
    return mu_.AwaitWithTimeout(absl::Condition(&cond), absl::Seconds(20));
  }
  int runs() const {
    absl::MutexLock l(&mu_);
    return runs_;
  }
  std::vector<v1::JobSpec> specs() const {
    absl::MutexLock l(&mu_);
    return specs_;
  }
  void set_devices(std::vector<DeviceInfo> d) {
    absl::MutexLock l(&mu_);
    devices_ = std::move(d);
  }

  std::vector<RunOptions> run_options() const {
    absl::MutexLock l(&mu_);
    return options_;
  }

  absl::StatusOr<v1::PruneReport> Run(const v1::JobSpec& spec, const RunOptions& options,
                                      const ProgressCallback& progress) override {
    Script s;
    {
      absl::MutexLock l(&mu_);
      ++runs_;
      specs_.push_back(spec);
      options_.push_back(options);
      s = script_;
    }
    if (!progress(Event(v1::STAGE_LOAD, 0, 0, 0.0, "loading"))) {
      return absl::CancelledError("cancelled during load");
    }
    for (int i = 0; i < s.layers; ++i) {
      if (s.gated) {
        absl::MutexLock l(&mu_);
        ++blocked_;
        auto cond = [this]() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) { return permits_ > 0; };
        const bool ok = mu_.AwaitWithTimeout(absl::Condition(&cond), absl::Seconds(30));
        --blocked_;
        if (!ok) return absl::DeadlineExceededError("fake runner: no permit within 30 s");
        --permits_;
      }
      if (s.layer_time > absl::ZeroDuration()) absl::SleepFor(s.layer_time);
      if (!s.fail_with.ok() && i == s.fail_at_layer) return s.fail_with;
      v1::EngineProgress p = Event(v1::STAGE_PRUNE, i, s.layers, 0.1 + 0.8 * (i + 1) / s.layers,
                                   absl::StrCat("layer ", i + 1, "/", s.layers));
      p.set_pass(1);
      p.set_passes(1);
      if (!progress(p)) return absl::CancelledError("cancelled at a layer boundary");
    }
    for (int t = 0; t < s.eval_ticks; ++t) {
      if (!progress(Event(v1::STAGE_EVAL_PRUNED, 0, 0, 0.95, "window"))) {
        return absl::CancelledError("cancelled during evaluation");
      }
    }
    v1::PruneReport r;
    *r.mutable_spec() = WithDefaults(spec);
    r.set_device(options.device);
    r.set_sparsity(PatternOf(r.spec()).effective_ratio());
    if (UsesCalibration(spec.method())) {
      r.set_calibration_tokens_used(r.spec().calibration().num_samples() *
                                    r.spec().calibration().seqlen());
    }
    v1::Evaluation* dense = r.add_evaluations();
    dense->set_target(v1::EVAL_TARGET_DENSE);
    dense->set_perplexity(s.ppl_dense);
    v1::Evaluation* pruned = r.add_evaluations();
    pruned->set_target(v1::EVAL_TARGET_PRUNED);
    pruned->set_perplexity(s.ppl_pruned);
    v1::EngineProgress done = Event(v1::STAGE_EVAL_PRUNED, 0, 0, 0.99, "evaluated");
    *done.mutable_evaluation() = *pruned;
    if (!progress(done)) return absl::CancelledError("cancelled");
    if (!options.output_dir.empty()) {
      std::string mk = absl::StrCat("mkdir -p '", options.output_dir, "'");
      if (std::system(mk.c_str()) != 0) return absl::InternalError("mkdir failed");
      std::ofstream(options.output_dir + "/config.json") << "{\"model_type\": \"llama\"}\n";
      std::ofstream bin(options.output_dir + "/model.safetensors", std::ios::binary);
      for (int i = 0; i < 3000; ++i) bin.put(static_cast<char>(i * 7 % 251));
      r.set_output_dir(options.output_dir);
    }
    return r;
  }

  std::vector<DeviceInfo> Devices() override {
    absl::MutexLock l(&mu_);
    return devices_;
  }
  int64_t DeviceMemoryAllocated(const std::string& device) override {
    return device.rfind("cuda", 0) == 0 ? 123456789 : 0;
  }
  std::string EngineVersion() override { return "fake 1.0"; }

 private:
  static v1::EngineProgress Event(v1::Stage stage, int64_t layer, int64_t layers, double fraction,
                                  const std::string& message) {
    v1::EngineProgress p;
    p.set_stage(stage);
    p.set_layer(layer);
    p.set_layers(layers);
    p.set_fraction(fraction);
    p.set_message(message);
    return p;
  }

  mutable absl::Mutex mu_;
  Script script_ ABSL_GUARDED_BY(mu_);
  int permits_ ABSL_GUARDED_BY(mu_) = 0;
  int runs_ ABSL_GUARDED_BY(mu_) = 0;
  int blocked_ ABSL_GUARDED_BY(mu_) = 0;
  std::vector<v1::JobSpec> specs_ ABSL_GUARDED_BY(mu_);
  std::vector<RunOptions> options_ ABSL_GUARDED_BY(mu_);
  std::vector<DeviceInfo> devices_ ABSL_GUARDED_BY(mu_) = {
      DeviceInfo{.name = "cpu", .description = "host CPU"}};
};

}  // namespace prunerd
