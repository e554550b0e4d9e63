package xds

import (
	"crypto/tls"
	"crypto/x509"
	"fmt"
	"os"

	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials"
	"google.golang.org/grpc/credentials/insecure"
)

// Dial builds a gRPC client connection to the control plane at addr ("host:port"). With
// rootCertFile set, the connection uses TLS 1.2+ verified against that PEM bundle with
// serverName (istiod's "istiod.istio-system.svc"); empty means plaintext (local tests
// only, as istiod-lite's 15010). The connection is lazy: nothing is dialed until used.
func Dial(addr, serverName, rootCertFile string) (*grpc.ClientConn, error) {
	creds := insecure.NewCredentials()
	if rootCertFile != "" {
		pem, err := os.ReadFile(rootCertFile)
		if err != nil {
			return nil, fmt.Errorf("read root cert: %w", err)
		}
		pool := x509.NewCertPool()
		if !pool.AppendCertsFromPEM(pem) {
			return nil, fmt.Errorf("read root cert %s: no PEM certificate", rootCertFile)
		}
		creds = credentials.NewTLS(&tls.Config{RootCAs: pool, ServerName: serverName, MinVersion: tls.VersionTLS12})
	}
	cc, err := grpc.NewClient(addr, grpc.WithTransportCredentials(creds))
	if err != nil {
		return nil, fmt.Errorf("dial xds %s: %w", addr, err)
	}
	return cc, nil
}
