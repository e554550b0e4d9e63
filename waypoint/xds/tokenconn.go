package xds

import (
	"context"
	"fmt"
	"os"
	"strings"

	"google.golang.org/grpc"
	"google.golang.org/grpc/metadata"

	"github.com/ambitmesh/ambit/pkg/wire"
)

// tokenConn attaches "clusterid" and, with a token file, "authorization: Bearer
// <token>" to every call and stream, re-reading the file each time so a rotated
// projected token is used on the next connect (as for the CA, wire.md).
type tokenConn struct {
	grpc.ClientConnInterface
	tokenFile, clusterID string
}

func (c tokenConn) outgoing(ctx context.Context) (context.Context, error) {
	md := metadata.Pairs(wire.MetadataClusterID, c.clusterID)
	if c.tokenFile != "" {
		b, err := os.ReadFile(c.tokenFile)
		if err != nil {
			return nil, fmt.Errorf("read token: %w", err)
		}
		md.Set("authorization", "Bearer "+strings.TrimSpace(string(b)))
	}
	return metadata.NewOutgoingContext(ctx, md), nil
}

// NewStream opens a stream carrying the metadata; a token that cannot be read fails it.
func (c tokenConn) NewStream(ctx context.Context, desc *grpc.StreamDesc, method string, opts ...grpc.CallOption) (grpc.ClientStream, error) {
	ctx, err := c.outgoing(ctx)
	if err != nil {
		return nil, err
	}
	return c.ClientConnInterface.NewStream(ctx, desc, method, opts...)
}

// Invoke makes a unary call carrying the metadata.
func (c tokenConn) Invoke(ctx context.Context, method string, args, reply any, opts ...grpc.CallOption) error {
	ctx, err := c.outgoing(ctx)
	if err != nil {
		return err
	}
	return c.ClientConnInterface.Invoke(ctx, method, args, reply, opts...)
}
