#include "server/grpc_service.h"

#include <string>

#include "server/grpc_status.h"

namespace prunerd {

absl::StatusOr<Principal> PrunerServiceImpl::Authorize(grpc::ServerContext* ctx, Role role) const {
  std::string header;
  const auto& md = ctx->client_metadata();
  auto it = md.find("authorization");
  if (it != md.end()) header.assign(it->second.data(), it->second.size());
  return auth_->Authenticate(header, role);
}

grpc::Status PrunerServiceImpl::SubmitJob(grpc::ServerContext* ctx, const v1::SubmitJobRequest* req,
                                          v1::SubmitJobResponse* resp) {
  absl::StatusOr<Principal> who = Authorize(ctx, Role::kSubmit);
  if (!who.ok()) return ToGrpcStatus(who.status());
  absl::StatusOr<JobManager::SubmitResult> r = jobs_->Submit(*req, *who);
  if (!r.ok()) return ToGrpcStatus(r.status());
  *resp->mutable_job() = std::move(r->job);
  resp->set_created(r->created);
  return grpc::Status::OK;
}

grpc::Status PrunerServiceImpl::GetJob(grpc::ServerContext* ctx, const v1::GetJobRequest* req,
                                       v1::Job* resp) {
  absl::StatusOr<Principal> who = Authorize(ctx, Role::kRead);
  if (!who.ok()) return ToGrpcStatus(who.status());
  absl::StatusOr<v1::Job> job = jobs_->Get(req->job_id());
  if (!job.ok()) return ToGrpcStatus(job.status());
  *resp = std::move(*job);
  return grpc::Status::OK;
}

grpc::Status PrunerServiceImpl::ListJobs(grpc::ServerContext* ctx, const v1::ListJobsRequest* req,
                                         v1::ListJobsResponse* resp) {
  absl::StatusOr<Principal> who = Authorize(ctx, Role::kRead);
  if (!who.ok()) return ToGrpcStatus(who.status());
  absl::StatusOr<v1::ListJobsResponse> r = jobs_->List(*req);
  if (!r.ok()) return ToGrpcStatus(r.status());
  *resp = std::move(*r);
  return grpc::Status::OK;
}

grpc::Status PrunerServiceImpl::CancelJob(grpc::ServerContext* ctx, const v1::CancelJobRequest* req,
                                          v1::Job* resp) {
  absl::StatusOr<Principal> who = Authorize(ctx, Role::kSubmit);
  if (!who.ok()) return ToGrpcStatus(who.status());
  absl::StatusOr<v1::Job> job = jobs_->Cancel(req->job_id(), *who);
  if (!job.ok()) return ToGrpcStatus(job.status());
  *resp = std::move(*job);
  return grpc::Status::OK;
}

grpc::Status PrunerServiceImpl::WatchJob(grpc::ServerContext* ctx, const v1::WatchJobRequest* req,
                                         grpc::ServerWriter<v1::JobEvent>* writer) {
  absl::StatusOr<Principal> who = Authorize(ctx, Role::kRead);
  if (!who.ok()) return ToGrpcStatus(who.status());
  return ToGrpcStatus(jobs_->Watch(
      req->job_id(), req->from_seq(),
      [writer](const v1::JobEvent& ev) { return writer->Write(ev); },
      [ctx] { return ctx->IsCancelled(); }));
}

grpc::Status PrunerServiceImpl::GetArtifact(grpc::ServerContext* ctx,
                                            const v1::GetArtifactRequest* req,
                                            grpc::ServerWriter<v1::ArtifactChunk>* writer) {
  absl::StatusOr<Principal> who = Authorize(ctx, Role::kRead);
  if (!who.ok()) return ToGrpcStatus(who.status());
  return ToGrpcStatus(jobs_->ReadArtifact(*req, [writer, ctx](const v1::ArtifactChunk& c) {
    return !ctx->IsCancelled() && writer->Write(c);
  }));
}

grpc::Status PrunerServiceImpl::GetServerInfo(grpc::ServerContext* ctx,
                                              const v1::GetServerInfoRequest* req,
                                              v1::ServerInfo* resp) {
  absl::StatusOr<Principal> who = Authorize(ctx, Role::kRead);
  if (!who.ok()) return ToGrpcStatus(who.status());
  *resp = jobs_->Info();
  return grpc::Status::OK;
}

}  // namespace prunerd
