package reapi

import (
	"context"
	"fmt"

	repb "github.com/bazelbuild/remote-apis/build/bazel/remote/execution/v2"
	"google.golang.org/grpc"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/encoding/protowire"
)

// Execute runs an action whose Action, Command and inputs are in the CAS,
// reading the operation's stream to its end. onName, when set, gets the
// operation's name as soon as the engine gives it (to cancel it). An
// error is the operation's (e.g. UNAVAILABLE when BuildGrid's queue
// timeout aborted it) or the execution's status (e.g. DEADLINE_EXCEEDED),
// with the response, when there is one, for its partial result.
func Execute(ctx context.Context, conn *grpc.ClientConn, instance string, action *repb.Digest, skipCache bool, onName func(string)) (*repb.ExecuteResponse, error) {
	stream, err := repb.NewExecutionClient(conn).Execute(ctx, &repb.ExecuteRequest{InstanceName: instance, ActionDigest: action, SkipCacheLookup: skipCache})
	if err != nil {
		return nil, fmt.Errorf("execute %s: %w", Key(action), err)
	}
	named := false
	for {
		op, err := stream.Recv()
		if err != nil {
			return nil, fmt.Errorf("execute %s: %w", Key(action), err)
		}
		if !named && onName != nil && op.Name != "" {
			onName(op.Name)
			named = true
		}
		if !op.Done {
			continue
		}
		if e := op.GetError(); e != nil {
			return nil, fmt.Errorf("execute %s: %w", Key(action), status.FromProto(e).Err())
		}
		resp := &repb.ExecuteResponse{}
		if err := op.GetResponse().UnmarshalTo(resp); err != nil {
			return nil, fmt.Errorf("execute %s: read the response: %w", Key(action), err)
		}
		if s := resp.Status; s != nil && s.Code != 0 {
			return resp, fmt.Errorf("execute %s: %w", Key(action), status.FromProto(s).Err())
		}
		return resp, nil
	}
}

// localityHeader is BuildGrid's request header for where a job would best
// run (build.buildgrid.SchedulingMetadata); other engines ignore it.
const localityHeader = "build.buildgrid.schedulingmetadata-bin"

// WithLocality asks the engine (BuildGrid, when its assigner samples bots)
// to prefer a worker that recently ran an action with the same hint
// successfully: one that holds its inputs already. The hint must not
// change what the action does, only where it runs.
func WithLocality(ctx context.Context, hint string) context.Context {
	if hint == "" {
		return ctx
	}
	// SchedulingMetadata{locality_hint = 1}: one string field.
	b := protowire.AppendTag(nil, 1, protowire.BytesType)
	b = protowire.AppendString(b, hint)
	return metadata.AppendToOutgoingContext(ctx, localityHeader, string(b))
}
