#include "client/job_format.h"

#include <cmath>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/strings/str_join.h"
#include "absl/time/time.h"
#include "core/api/job_spec.h"
#include "core/api/proto_json.h"

namespace prunerd {
namespace {

std::string FormatTime(const google::protobuf::Timestamp& ts) {
  if (ts.seconds() == 0 && ts.nanos() == 0) return "-";
  return absl::FormatTime("%Y-%m-%dT%H:%M:%SZ", absl::FromUnixSeconds(ts.seconds()),
                          absl::UTCTimeZone());
}

std::string Target(const v1::JobSpec& s) {
  if (s.sparsity_case() == v1::JobSpec::kPattern) return PatternName(PatternOf(s));
  if (s.sparsity_case() == v1::JobSpec::kRatio) return absl::StrFormat("%.2f", s.ratio());
  return "-";
}

std::string StageText(const v1::JobProgress& p) {
  std::string s = EnumName(p.stage());
  if (p.layers() > 0) absl::StrAppend(&s, " ", p.layer() + 1, "/", p.layers());
  if (p.passes() > 1) absl::StrAppend(&s, " (pass ", p.pass(), "/", p.passes(), ")");
  return s;
}

std::string PplText(const v1::JobProgress& p) {
  if (p.has_perplexity_dense() && p.has_perplexity_pruned()) {
    return absl::StrFormat("ppl %.2f -> %.2f", p.perplexity_dense(), p.perplexity_pruned());
  }
  if (p.has_perplexity_dense()) return absl::StrFormat("ppl(dense) %.2f", p.perplexity_dense());
  if (p.has_perplexity_pruned()) return absl::StrFormat("ppl(pruned) %.2f", p.perplexity_pruned());
  return "";
}

}  // namespace

std::string ToJson(const google::protobuf::Message& message) { return ProtoToJson(message); }

std::string HumanDuration(double seconds) {
  if (!(seconds >= 0) || !std::isfinite(seconds)) return "?";
  const int64_t s = static_cast<int64_t>(std::llround(seconds));
  if (s < 60) return absl::StrCat(s, "s");
  if (s < 3600) return absl::StrFormat("%dm%02ds", s / 60, s % 60);
  return absl::StrFormat("%dh%02dm", s / 3600, (s % 3600) / 60);
}

std::string HumanBytes(int64_t bytes) {
  const char* units[] = {"B", "KiB", "MiB", "GiB", "TiB"};
  double v = static_cast<double>(bytes);
  int u = 0;
  while (v >= 1024 && u < 4) {
    v /= 1024;
    ++u;
  }
  return u == 0 ? absl::StrCat(bytes, " B") : absl::StrFormat("%.1f %s", v, units[u]);
}

std::string ProgressBarLine(v1::JobState state, const v1::JobProgress& p, int width) {
  const double f = std::clamp(p.fraction(), 0.0, 1.0);
  const int filled = static_cast<int>(std::floor(f * width + 1e-9));
  std::string bar =
      absl::StrCat("[", std::string(filled, '#'), std::string(width - filled, '-'), "]");
  std::string line =
      absl::StrFormat("%s %5.1f%%  %-9s %s", bar, 100 * f, StateName(state), StageText(p));
  if (p.has_eta_seconds()) absl::StrAppend(&line, "  ETA ", HumanDuration(p.eta_seconds()));
  const std::string ppl = PplText(p);
  if (!ppl.empty()) absl::StrAppend(&line, "  ", ppl);
  return line;
}

std::string EventLine(const v1::JobEvent& ev) {
  std::string line =
      absl::StrCat(FormatTime(ev.time()), "  #", ev.seq(), "  ", StateName(ev.state()));
  if (ev.type() == v1::JobEvent::TYPE_INTERRUPTED) absl::StrAppend(&line, " (interrupted)");
  if (ev.type() == v1::JobEvent::TYPE_STREAM_END) absl::StrAppend(&line, " (stream end)");
  if (ev.progress().stage() != v1::STAGE_UNSPECIFIED) {
    absl::StrAppend(&line, "  ", StageText(ev.progress()),
                    absl::StrFormat("  %.1f%%", 100 * ev.progress().fraction()));
  }
  if (ev.progress().has_eta_seconds()) {
    absl::StrAppend(&line, "  ETA ", HumanDuration(ev.progress().eta_seconds()));
  }
  const std::string ppl = PplText(ev.progress());
  if (!ppl.empty()) absl::StrAppend(&line, "  ", ppl);
  if (!ev.message().empty()) absl::StrAppend(&line, "  ", ev.message());
  return line;
}

std::string JobSummary(const v1::Job& j) {
  const v1::JobSpec& s = j.spec();
  std::string out;
  absl::StrAppend(&out, "job        ", j.id(), "\n");
  absl::StrAppend(&out, "state      ", StateName(j.state()),
                  j.cancel_requested() ? " (cancel requested)" : "", "\n");
  absl::StrAppend(&out, "method     ", EnumName(s.method()), "  target ", Target(s), "\n");
  absl::StrAppend(&out, "model      ", s.model(), "\n");
  if (!j.request_id().empty()) absl::StrAppend(&out, "request_id ", j.request_id(), "\n");
  if (!j.owner().empty()) absl::StrAppend(&out, "owner      ", j.owner(), "\n");
  absl::StrAppend(&out, "created    ", FormatTime(j.create_time()), "\n");
  if (j.has_start_time()) {
    absl::StrAppend(&out, "started    ", FormatTime(j.start_time()), " on ", j.device(),
                    " (attempt ", j.attempt(), ")\n");
  }
  if (j.has_end_time()) absl::StrAppend(&out, "ended      ", FormatTime(j.end_time()), "\n");
  if (!IsTerminal(j.state())) {
    absl::StrAppend(&out, "progress   ", ProgressBarLine(j.state(), j.progress(), 20), "\n");
  }
  if (j.state() == v1::JOB_STATE_SUCCEEDED) {
    const v1::JobResult& r = j.result();
    absl::StrAppend(&out, absl::StrFormat("sparsity   %.4f\n", r.sparsity()));
    if (r.has_perplexity_dense() || r.has_perplexity_pruned()) {
      std::string ppl = "perplexity ";
      if (r.has_perplexity_dense())
        absl::StrAppend(&ppl, absl::StrFormat("dense %.4f  ", r.perplexity_dense()));
      if (r.has_perplexity_pruned())
        absl::StrAppend(&ppl, absl::StrFormat("pruned %.4f", r.perplexity_pruned()));
      if (r.has_perplexity_dense() && r.has_perplexity_pruned()) {
        absl::StrAppend(&ppl, absl::StrFormat("  (%+.2f%%)",
                                              100 * (r.perplexity_pruned() - r.perplexity_dense()) /
                                                  r.perplexity_dense()));
      }
      absl::StrAppend(&out, ppl, "\n");
    }
    absl::StrAppend(&out, "run time   ", HumanDuration(r.run_seconds()), "\n");
  }
  if (j.has_error() && !j.error().reason().empty()) {
    absl::StrAppend(&out, "error      ", j.error().reason(), ": ", j.error().message(), "\n");
  }
  if (j.result().artifacts_size() > 0) {
    absl::StrAppend(&out, "artifacts\n");
    for (const v1::Artifact& a : j.result().artifacts()) {
      absl::StrAppend(&out, absl::StrFormat("  %-36s %10s  %s\n", a.name(),
                                            HumanBytes(a.size_bytes()), a.sha256().substr(0, 16)));
    }
  }
  return out;
}

std::string JobListLine(const v1::Job& j) {
  std::string extra;
  if (j.state() == v1::JOB_STATE_RUNNING) {
    extra = absl::StrFormat("%s %.0f%%", StageText(j.progress()), 100 * j.progress().fraction());
  } else if (j.state() == v1::JOB_STATE_SUCCEEDED && j.result().has_perplexity_pruned()) {
    extra = absl::StrFormat("ppl %.3f", j.result().perplexity_pruned());
  } else if (j.has_error()) {
    extra = j.error().reason();
  }
  return absl::StrFormat("%-24s %-10s %-10s %-8s %s  %s", j.id(), StateName(j.state()),
                         EnumName(j.spec().method()), Target(j.spec()), FormatTime(j.create_time()),
                         extra);
}

}  // namespace prunerd
