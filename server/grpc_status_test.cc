#include "server/grpc_status.h"

#include "gtest/gtest.h"

namespace prunerd {
namespace {

TEST(GrpcStatusTest, MapsEveryPolicyClass) {
  struct Case {
    absl::Status in;
    grpc::StatusCode out;
  } cases[] = {
      {absl::InvalidArgumentError("spec.ratio: bad"), grpc::StatusCode::INVALID_ARGUMENT},
      {absl::NotFoundError("job j-1 not found"), grpc::StatusCode::NOT_FOUND},
      {absl::FailedPreconditionError("done"), grpc::StatusCode::FAILED_PRECONDITION},
      {absl::AlreadyExistsError("request_id"), grpc::StatusCode::ALREADY_EXISTS},
      {absl::UnauthenticatedError("no token"), grpc::StatusCode::UNAUTHENTICATED},
      {absl::PermissionDeniedError("role"), grpc::StatusCode::PERMISSION_DENIED},
      {absl::UnavailableError("draining"), grpc::StatusCode::UNAVAILABLE},
      {absl::OutOfRangeError("offset"), grpc::StatusCode::OUT_OF_RANGE},
      {absl::ResourceExhaustedError("oom"), grpc::StatusCode::RESOURCE_EXHAUSTED},
      {absl::CancelledError("c"), grpc::StatusCode::CANCELLED},
      {absl::DataLossError("d"), grpc::StatusCode::DATA_LOSS},
      {absl::InternalError("i"), grpc::StatusCode::INTERNAL},
      {absl::UnimplementedError("u"), grpc::StatusCode::UNIMPLEMENTED},
      {absl::DeadlineExceededError("t"), grpc::StatusCode::DEADLINE_EXCEEDED},
      {absl::AbortedError("a"), grpc::StatusCode::ABORTED},
      {absl::UnknownError("?"), grpc::StatusCode::UNKNOWN},
      {absl::Status(static_cast<absl::StatusCode>(99), "weird"), grpc::StatusCode::UNKNOWN},
  };
  for (const Case& c : cases) {
    grpc::Status g = ToGrpcStatus(c.in);
    EXPECT_EQ(g.error_code(), c.out) << c.in;
    EXPECT_EQ(g.error_message(), std::string(c.in.message()));
  }
  EXPECT_TRUE(ToGrpcStatus(absl::OkStatus()).ok());
}

}  // namespace
}  // namespace prunerd
