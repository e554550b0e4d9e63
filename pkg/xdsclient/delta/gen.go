package delta

// delta.pb.go is generated with protoc (Debian: protobuf-compiler) and the
// protoc-gen-go of the module's google.golang.org/protobuf version.
//go:generate go build -o protoc-gen-go.tmp google.golang.org/protobuf/cmd/protoc-gen-go
//go:generate protoc --plugin=protoc-gen-go=protoc-gen-go.tmp -I../../.. --go_out=../../.. --go_opt=paths=source_relative pkg/xdsclient/delta/delta.proto
//go:generate rm protoc-gen-go.tmp
