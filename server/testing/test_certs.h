// File: test_certs.h
//
// Throwaway TLS material for tests, made at test time with the openssl CLI (EC P-256 keys,
// valid one day): a CA, a server certificate for localhost / 127.0.0.1, a client certificate
// signed by the CA (mTLS), and a client certificate from an unrelated "rogue" CA.
//
//   TestCerts certs(dir.path());
//   ASSERT_TRUE(certs.ok()) << certs.error();
//   config.tls_cert = certs.server_cert(); ...
//
// Thread-safety: immutable after construction.
#pragma once

#include <cstdlib>
#include <string>

namespace prunerd {

class TestCerts {
 public:
  explicit TestCerts(const std::string& dir) : dir_(dir) {
    const std::string d = "'" + dir + "'";
    const std::string key = "-newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes";
    const std::string cmd =
        "set -e; cd " + d +
        "; exec >openssl.log 2>&1;"
        "openssl req -x509 " +
        key +
        " -keyout ca.key -out ca.pem -days 1 -subj '/CN=prunerd test CA';"
        "openssl req -x509 " +
        key +
        " -keyout rogue-ca.key -out rogue-ca.pem -days 1 -subj '/CN=rogue CA';"
        "printf 'subjectAltName=DNS:localhost,IP:127.0.0.1\\nextendedKeyUsage=serverAuth\\n' > "
        "server.ext;"
        "printf 'extendedKeyUsage=clientAuth\\n' > client.ext;"
        "openssl req " +
        key +
        " -keyout server.key -out server.csr -subj '/CN=localhost';"
        "openssl x509 -req -in server.csr -CA ca.pem -CAkey ca.key -CAcreateserial -out server.pem "
        "-days 1 -extfile server.ext;"
        "openssl req " +
        key +
        " -keyout client.key -out client.csr -subj '/CN=ci-client';"
        "openssl x509 -req -in client.csr -CA ca.pem -CAkey ca.key -CAcreateserial -out client.pem "
        "-days 1 -extfile client.ext;"
        "openssl req " +
        key +
        " -keyout rogue.key -out rogue.csr -subj '/CN=rogue-client';"
        "openssl x509 -req -in rogue.csr -CA rogue-ca.pem -CAkey rogue-ca.key -CAcreateserial -out "
        "rogue.pem -days 1 -extfile client.ext;";
    ok_ = std::system(cmd.c_str()) == 0;
  }
  bool ok() const { return ok_; }
  std::string error() const { return "openssl failed; see " + dir_ + "/openssl.log"; }
  std::string ca() const { return dir_ + "/ca.pem"; }
  std::string server_cert() const { return dir_ + "/server.pem"; }
  std::string server_key() const { return dir_ + "/server.key"; }
  std::string client_cert() const { return dir_ + "/client.pem"; }
  std::string client_key() const { return dir_ + "/client.key"; }
  std::string rogue_ca() const { return dir_ + "/rogue-ca.pem"; }
  std::string rogue_cert() const { return dir_ + "/rogue.pem"; }
  std::string rogue_key() const { return dir_ + "/rogue.key"; }

 private:
  std::string dir_;
  bool ok_ = false;
};

}  // namespace prunerd
