#include "client/exit_codes.h"

#include <set>

#include "gtest/gtest.h"

namespace prunerd {
namespace {

TEST(ExitCodesTest, DistinctCodesForTheCiOutcomes) {
  const std::set<int> codes = {
      ExitCodeForJobState(v1::JOB_STATE_FAILED), ExitCodeForJobState(v1::JOB_STATE_CANCELLED),
      ExitCodeForStatus(grpc::Status(grpc::StatusCode::UNAVAILABLE, "")),
      ExitCodeForStatus(grpc::Status(grpc::StatusCode::INVALID_ARGUMENT, "")),
      ExitCodeForStatus(grpc::Status(grpc::StatusCode::UNAUTHENTICATED, ""))};
  EXPECT_EQ(codes.size(), 5u);
  EXPECT_EQ(codes.count(0), 0u);
  EXPECT_EQ(ExitCodeForJobState(v1::JOB_STATE_SUCCEEDED), 0);
  EXPECT_EQ(ExitCodeForJobState(v1::JOB_STATE_FAILED), 1);
  EXPECT_EQ(ExitCodeForJobState(v1::JOB_STATE_CANCELLED), 2);
  EXPECT_EQ(ExitCodeForJobState(v1::JOB_STATE_RUNNING), kExitError);
}

TEST(ExitCodesTest, StatusClasses) {
  using C = grpc::StatusCode;
  EXPECT_EQ(ExitCodeForStatus(grpc::Status(C::DEADLINE_EXCEEDED, "")), kExitUnreachable);
  EXPECT_EQ(ExitCodeForStatus(grpc::Status(C::CANCELLED, "")), kExitUnreachable);
  for (C c : {C::INVALID_ARGUMENT, C::NOT_FOUND, C::ALREADY_EXISTS, C::FAILED_PRECONDITION,
              C::OUT_OF_RANGE}) {
    EXPECT_EQ(ExitCodeForStatus(grpc::Status(c, "")), kExitInvalid) << c;
  }
  EXPECT_EQ(ExitCodeForStatus(grpc::Status(C::PERMISSION_DENIED, "")), kExitAuth);
  EXPECT_EQ(ExitCodeForStatus(grpc::Status(C::DATA_LOSS, "")), kExitIntegrity);
  EXPECT_EQ(ExitCodeForStatus(grpc::Status(C::INTERNAL, "")), kExitError);
  EXPECT_EQ(ExitCodeForStatus(grpc::Status::OK), kExitOk);
}

}  // namespace
}  // namespace prunerd
