// File: grpc_service.h
//
// prunerd.v1.PrunerService over gRPC (synchronous API): authenticates each call with the
// bearer token in its metadata, checks the caller's role, calls JobManager and maps the
// resulting absl::Status with ToGrpcStatus (the one mapping function). It holds no state of
// its own.
//
//   PrunerServiceImpl service(&jobs, auth.get());
//   builder.RegisterService(&service);
//
// Thread-safety: gRPC calls the handlers from many threads at once; JobManager and
// TokenAuthenticator are thread-safe.
#pragma once

#include "prunerd/v1/service.grpc.pb.h"
#include "server/auth.h"
#include "server/job_manager.h"

namespace prunerd {

class PrunerServiceImpl final : public v1::PrunerService::Service {
 public:
  PrunerServiceImpl(JobManager* jobs, const TokenAuthenticator* auth) : jobs_(jobs), auth_(auth) {}

  grpc::Status SubmitJob(grpc::ServerContext* ctx, const v1::SubmitJobRequest* req,
                         v1::SubmitJobResponse* resp) override;
  grpc::Status GetJob(grpc::ServerContext* ctx, const v1::GetJobRequest* req,
                      v1::Job* resp) override;
  grpc::Status ListJobs(grpc::ServerContext* ctx, const v1::ListJobsRequest* req,
                        v1::ListJobsResponse* resp) override;
  grpc::Status CancelJob(grpc::ServerContext* ctx, const v1::CancelJobRequest* req,
                         v1::Job* resp) override;
  grpc::Status WatchJob(grpc::ServerContext* ctx, const v1::WatchJobRequest* req,
                        grpc::ServerWriter<v1::JobEvent>* writer) override;
  grpc::Status GetArtifact(grpc::ServerContext* ctx, const v1::GetArtifactRequest* req,
                           grpc::ServerWriter<v1::ArtifactChunk>* writer) override;
  grpc::Status GetServerInfo(grpc::ServerContext* ctx, const v1::GetServerInfoRequest* req,
                             v1::ServerInfo* resp) override;

 private:
  absl::StatusOr<Principal> Authorize(grpc::ServerContext* ctx, Role role) const;

  JobManager* jobs_;
  const TokenAuthenticator* auth_;
};

}  // namespace prunerd
