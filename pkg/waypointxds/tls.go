package waypointxds

import (
	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	tlsv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/transport_sockets/tls/v3"
	matcherv3 "github.com/envoyproxy/go-control-plane/envoy/type/matcher/v3"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/wrapperspb"
)

// SDSSecret is the reference {name, sds_config: ADSConfigSource()} to the SDS secret
// name (SecretDefault or SecretRootCA).
func SDSSecret(name string) *tlsv3.SdsSecretConfig {
	return &tlsv3.SdsSecretConfig{Name: name, SdsConfig: ADSConfigSource()}
}

// CommonTLS is the TLS context of both HBONE directions for trust domain td: TLS 1.3
// only, ALPN h2, the certificate of secret SecretDefault, peers chaining to secret
// SecretRootCA with a URI SAN prefixed "spiffe://<td>/" (as ztunnel's HBONE mTLS).
func CommonTLS(td string) *tlsv3.CommonTlsContext {
	return &tlsv3.CommonTlsContext{
		TlsParams: &tlsv3.TlsParameters{
			TlsMinimumProtocolVersion: tlsv3.TlsParameters_TLSv1_3,
			TlsMaximumProtocolVersion: tlsv3.TlsParameters_TLSv1_3,
		},
		AlpnProtocols:                  []string{"h2"},
		TlsCertificateSdsSecretConfigs: []*tlsv3.SdsSecretConfig{SDSSecret(SecretDefault)},
		ValidationContextType: &tlsv3.CommonTlsContext_CombinedValidationContext{
			CombinedValidationContext: &tlsv3.CommonTlsContext_CombinedCertificateValidationContext{
				DefaultValidationContext: &tlsv3.CertificateValidationContext{
					MatchTypedSubjectAltNames: []*tlsv3.SubjectAltNameMatcher{{
						SanType: tlsv3.SubjectAltNameMatcher_URI,
						Matcher: &matcherv3.StringMatcher{MatchPattern: &matcherv3.StringMatcher_Prefix{
							Prefix: "spiffe://" + td + "/",
						}},
					}},
				},
				ValidationContextSdsSecretConfig: SDSSecret(SecretRootCA),
			},
		},
	}
}

// DownstreamTLS is connect_terminate's transport socket: CommonTLS(td) requiring a
// client certificate.
func DownstreamTLS(td string) *corev3.TransportSocket {
	return tlsSocket(&tlsv3.DownstreamTlsContext{
		RequireClientCertificate: wrapperspb.Bool(true),
		CommonTlsContext:         CommonTLS(td),
	})
}

// UpstreamTLS is the connect_originate cluster's transport socket: CommonTLS(td).
func UpstreamTLS(td string) *corev3.TransportSocket {
	return tlsSocket(&tlsv3.UpstreamTlsContext{CommonTlsContext: CommonTLS(td)})
}

func tlsSocket(ctx proto.Message) *corev3.TransportSocket {
	return &corev3.TransportSocket{
		Name:       TransportSocketTLS,
		ConfigType: &corev3.TransportSocket_TypedConfig{TypedConfig: MarshalAny(ctx)},
	}
}

// DefaultSecret is the SDS secret SecretDefault: tls_certificate {certificate_chain,
// private_key} as inline bytes (copies of certChainPEM, leaf first, and keyPEM).
func DefaultSecret(certChainPEM, keyPEM []byte) *tlsv3.Secret {
	return &tlsv3.Secret{Name: SecretDefault, Type: &tlsv3.Secret_TlsCertificate{TlsCertificate: &tlsv3.TlsCertificate{
		CertificateChain: inlineBytes(certChainPEM),
		PrivateKey:       inlineBytes(keyPEM),
	}}}
}

// RootCASecret is the SDS secret SecretRootCA: validation_context {trusted_ca} as
// inline bytes (a copy of rootPEM, the mesh root certificates).
func RootCASecret(rootPEM []byte) *tlsv3.Secret {
	return &tlsv3.Secret{Name: SecretRootCA, Type: &tlsv3.Secret_ValidationContext{ValidationContext: &tlsv3.CertificateValidationContext{
		TrustedCa: inlineBytes(rootPEM),
	}}}
}

func inlineBytes(b []byte) *corev3.DataSource {
	return &corev3.DataSource{Specifier: &corev3.DataSource_InlineBytes{InlineBytes: append([]byte(nil), b...)}}
}
