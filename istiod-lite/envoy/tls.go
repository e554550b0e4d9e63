package envoy

import (
	"encoding/pem"
	"fmt"

	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	tlsv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/transport_sockets/tls/v3"
	"google.golang.org/protobuf/types/known/wrapperspb"
)

// Secrets is the waypoint's TLS material, all PEM: CertChainPEM is the leaf first (then
// intermediates), KeyPEM its private key, RootPEM the mesh root certificates. They become
// the SDS secrets SecretDefault and SecretRootCA.
type Secrets struct {
	CertChainPEM []byte
	KeyPEM       []byte
	RootPEM      []byte
}

// Empty reports whether no secret material is set.
func (s Secrets) Empty() bool {
	return len(s.CertChainPEM) == 0 && len(s.KeyPEM) == 0 && len(s.RootPEM) == 0
}

// SecretResources returns the SDS secrets SecretDefault ({tls_certificate:
// {certificate_chain, private_key}} inline bytes) and SecretRootCA ({validation_context:
// {trusted_ca}} inline bytes), sorted by name. Each field must hold at least one PEM
// block, else the error wraps ErrInvalidSecrets.
func SecretResources(s Secrets) ([]*tlsv3.Secret, error) {
	for _, f := range []struct {
		name string
		pem  []byte
	}{{"cert chain", s.CertChainPEM}, {"private key", s.KeyPEM}, {"root", s.RootPEM}} {
		if b, _ := pem.Decode(f.pem); b == nil {
			return nil, fmt.Errorf("secret resources: %s: %w: no PEM block", f.name, ErrInvalidSecrets)
		}
	}
	inline := func(b []byte) *corev3.DataSource {
		return &corev3.DataSource{Specifier: &corev3.DataSource_InlineBytes{InlineBytes: append([]byte(nil), b...)}}
	}
	return []*tlsv3.Secret{
		{Name: SecretRootCA, Type: &tlsv3.Secret_ValidationContext{ValidationContext: &tlsv3.CertificateValidationContext{
			TrustedCa: inline(s.RootPEM),
		}}},
		{Name: SecretDefault, Type: &tlsv3.Secret_TlsCertificate{TlsCertificate: &tlsv3.TlsCertificate{
			CertificateChain: inline(s.CertChainPEM),
			PrivateKey:       inline(s.KeyPEM),
		}}},
	}, nil
}

func sdsSecret(name string) *tlsv3.SdsSecretConfig {
	return &tlsv3.SdsSecretConfig{Name: name, SdsConfig: adsConfig()}
}

// commonTLS is the TLS context of both HBONE directions: TLS 1.3 only, ALPN h2, the
// "default" certificate, peers chaining to "ROOTCA" with a URI SAN in the trust domain.
func commonTLS(trustDomain string) *tlsv3.CommonTlsContext {
	return &tlsv3.CommonTlsContext{
		TlsParams: &tlsv3.TlsParameters{
			TlsMinimumProtocolVersion: tlsv3.TlsParameters_TLSv1_3,
			TlsMaximumProtocolVersion: tlsv3.TlsParameters_TLSv1_3,
		},
		AlpnProtocols:                  []string{"h2"},
		TlsCertificateSdsSecretConfigs: []*tlsv3.SdsSecretConfig{sdsSecret(SecretDefault)},
		ValidationContextType: &tlsv3.CommonTlsContext_CombinedValidationContext{
			CombinedValidationContext: &tlsv3.CommonTlsContext_CombinedCertificateValidationContext{
				DefaultValidationContext: &tlsv3.CertificateValidationContext{
					MatchTypedSubjectAltNames: []*tlsv3.SubjectAltNameMatcher{{
						SanType: tlsv3.SubjectAltNameMatcher_URI,
						Matcher: prefix("spiffe://" + trustDomain + "/"),
					}},
				},
				ValidationContextSdsSecretConfig: sdsSecret(SecretRootCA),
			},
		},
	}
}

func downstreamTLS(trustDomain string) *corev3.TransportSocket {
	return &corev3.TransportSocket{
		Name: TransportSocketTLS,
		ConfigType: &corev3.TransportSocket_TypedConfig{TypedConfig: marshalAny(&tlsv3.DownstreamTlsContext{
			RequireClientCertificate: wrapperspb.Bool(true),
			CommonTlsContext:         commonTLS(trustDomain),
		})},
	}
}

func upstreamTLS(trustDomain string) *corev3.TransportSocket {
	return &corev3.TransportSocket{
		Name: TransportSocketTLS,
		ConfigType: &corev3.TransportSocket_TypedConfig{TypedConfig: marshalAny(&tlsv3.UpstreamTlsContext{
			CommonTlsContext: commonTLS(trustDomain),
		})},
	}
}
