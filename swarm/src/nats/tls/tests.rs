//! Test certificates, made once with the openssl CLI (EC P-256), valid from 2026-12-01 08:43:08
//! UTC for a hundred years (`notBefore` is a UTCTime, `notAfter` a GeneralizedTime).

use super::{ca_certificates, x509};

/// A CA, `O=swarm, CN=swarm test CA`, with a subject key identifier.
pub(crate) const CA_PEM: &str = "\
-----BEGIN CERTIFICATE-----\n\
MIIBljCCATygAwIBAgIUCYynSsGuq8kGgHFfBh0YMWIa2/AwCgYIKoZIzj0EAwIw\n\
KDEOMAwGA1UECgwFc3dhcm0xFjAUBgNVBAMMDXN3YXJtIHRlc3QgQ0EwIBcNMjYx\n\
MjAxMDg0MzA4WhgPMjEyNjExMDcwODQzMDhaMCgxDjAMBgNVBAoMBXN3YXJtMRYw\n\
FAYDVQQDDA1zd2FybSB0ZXN0IENBMFkwEwYHKoZIzj0CAQYIKoZIzj0DAQcDQgAE\n\
BBB8CkBusdYAIT0+VnMOCm8jZf1qkV8YWliCKfBrZAU2fzGg7qyhAJG3TA86HRPl\n\
iv7R3Sk7KlVUtId9SaQQ9qNCMEAwDwYDVR0TAQH/BAUwAwEB/zAOBgNVHQ8BAf8E\n\
BAMCAQYwHQYDVR0OBBYEFKlC9cHQW+qnBkimhpMTOcvGzwHIMAoGCCqGSM49BAMC\n\
A0gAMEUCIQCMYnnqzvEnrH0/Gbl+YzOEYYK7Laqp4Yy41BMoHiApsgIgV4WZiLcr\n\
vQV49oWMHzhgLZzMXit3GjRgVxlWrfEMhS8=\n\
-----END CERTIFICATE-----\n\
";

/// Another CA, `CN=swarm untrusted CA`.
pub(crate) const OTHER_CA_PEM: &str = "\
-----BEGIN CERTIFICATE-----\n\
MIIBfzCCASagAwIBAgIUNhf4SfLjb1CGFYsKBTKWCeR+77gwCgYIKoZIzj0EAwIw\n\
HTEbMBkGA1UEAwwSc3dhcm0gdW50cnVzdGVkIENBMCAXDTI2MTIwMTA4NDMwOFoY\n\
DzIxMjYxMTA3MDg0MzA4WjAdMRswGQYDVQQDDBJzd2FybSB1bnRydXN0ZWQgQ0Ew\n\
WTATBgcqhkjOPQIBBggqhkjOPQMBBwNCAASuw6CWZ8taUmUYkmD0lNd8RWb3ixBe\n\
OpY1R+fq6yEb3+FYYVqBhTAO7jF8+HyTxAtxl+wzwx1IHfvgYRV0N+8ao0IwQDAP\n\
BgNVHRMBAf8EBTADAQH/MA4GA1UdDwEB/wQEAwIBBjAdBgNVHQ4EFgQUWD9mG+Hc\n\
qfaxOG70kZ/wOOW3JiYwCgYIKoZIzj0EAwIDRwAwRAIgEKzLw4opP7NbTp6l9NQv\n\
ep/f81EUu0VM7dVM4t/oRJUCICgtRkE6ACmX37/ye5OJomqXPKiLa+GeRRqqCySZ\n\
GARH\n\
-----END CERTIFICATE-----\n\
";

/// A server certificate for `localhost`, `*.nats.test` and `127.0.0.1`, issued by `CA_PEM`.
pub(crate) const LEAF_PEM: &str = "\
-----BEGIN CERTIFICATE-----\n\
MIIBzjCCAXOgAwIBAgIBAjAKBggqhkjOPQQDAjAoMQ4wDAYDVQQKDAVzd2FybTEW\n\
MBQGA1UEAwwNc3dhcm0gdGVzdCBDQTAgFw0yNjEyMDEwODQzMDhaGA8yMTI2MTEw\n\
NzA4NDMwOFowFDESMBAGA1UEAwwJbG9jYWxob3N0MFkwEwYHKoZIzj0CAQYIKoZI\n\
zj0DAQcDQgAEDUpN1eTWf6LpPBtPnS83+0lPEq9NpSXJQnI8834QmTYod6dSdHVo\n\
3H6/ucp2FC6p4d81Yw9+Dv0mlcID1FSpsqOBnzCBnDAMBgNVHRMBAf8EAjAAMA4G\n\
A1UdDwEB/wQEAwIHgDATBgNVHSUEDDAKBggrBgEFBQcDATAnBgNVHREEIDAeggls\n\
b2NhbGhvc3SCCyoubmF0cy50ZXN0hwR/AAABMB0GA1UdDgQWBBRiHL9qa3hINtg2\n\
+eV8XI1JoL+VtjAfBgNVHSMEGDAWgBSpQvXB0FvqpwZIpoaTEznLxs8ByDAKBggq\n\
hkjOPQQDAgNJADBGAiEA6XblxFJIkgImmo5IgSn70XQzPO3t53wA7NwF2XRVxGoC\n\
IQCzANkruOHGDLR7pGDIi1RlhORL6VoU7iawKnawvJyoJg==\n\
-----END CERTIFICATE-----\n\
";

/// The DER bytes of the single certificate in `pem`.
pub(crate) fn der(pem: &str) -> Vec<u8> {
    ca_certificates(pem).unwrap().remove(0).der
}

/// `LEAF_PEM`'s validity, in seconds since 1970.
pub(crate) const LEAF_NOT_BEFORE: i64 = 1_796_114_588;
pub(crate) const LEAF_NOT_AFTER: i64 = 4_949_714_588;

/// The leaf read back.
pub(crate) fn leaf() -> x509::Certificate {
    x509::Certificate::parse(&der(LEAF_PEM)).unwrap()
}
