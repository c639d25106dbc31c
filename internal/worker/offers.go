package worker

// What workers offer, for clients. BuildGrid queues an action whose
// platform no live worker matches until its queue timeout (30 min in the
// recipe), then fails it UNAVAILABLE, with nothing that names the
// property: it cannot tell "no worker has it" from "all are busy". So each
// worker also publishes every property it offers in the engine's action
// cache, under a digest that names the property, refreshed while it runs;
// a client asks for the properties an action needs before it waits, and
// says which one no worker offers.

import (
	"context"
	"fmt"
	"time"

	repb "github.com/bazelbuild/remote-apis/build/bazel/remote/execution/v2"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/types/known/timestamppb"

	"smelt/internal/reapi"
)

// OfferRefresh is how often a worker republishes its offers; an offer
// older than OfferMaxAge is taken for a worker that is gone.
const (
	OfferRefresh = time.Minute
	OfferMaxAge  = 3 * OfferRefresh
)

// offerDigest names "a worker offers p" in the action cache. The prefix
// keeps it apart from every real action digest (those hash an Action
// message, which never starts with these bytes).
func offerDigest(instance string, p Property) *repb.Digest {
	return reapi.Digest([]byte("smelt-worker-offer-v1 " + instance + " " + p.Key + "=" + p.Value))
}

// publish records the worker's properties in the action cache, stamped
// now.
func (w *Worker) publish(ctx context.Context, ac repb.ActionCacheClient) error {
	now := timestamppb.Now()
	for _, p := range w.props {
		res := &repb.ActionResult{ExecutionMetadata: &repb.ExecutedActionMetadata{Worker: w.botID, WorkerCompletedTimestamp: now}}
		_, err := ac.UpdateActionResult(ctx, &repb.UpdateActionResultRequest{
			InstanceName: w.o.Engine.Instance, ActionDigest: offerDigest(w.o.Engine.Instance, p), ActionResult: res})
		if err != nil {
			return fmt.Errorf("publish the offer %s=%s: %w", p.Key, p.Value, err)
		}
	}
	return nil
}

// Unoffered returns the properties of want ("KEY=VALUE") that no worker
// of the engine has offered within OfferMaxAge: an action that needs one
// of them would wait in the queue for nothing.
func Unoffered(ctx context.Context, conn *grpc.ClientConn, instance string, want []Property) ([]string, error) {
	ac := repb.NewActionCacheClient(conn)
	var out []string
	for _, p := range want {
		res, err := ac.GetActionResult(ctx, &repb.GetActionResultRequest{InstanceName: instance, ActionDigest: offerDigest(instance, p)})
		if status.Code(err) == codes.NotFound {
			out = append(out, p.Key+"="+p.Value)
			continue
		}
		if err != nil {
			return nil, fmt.Errorf("ask the engine which workers offer %s=%s: %w", p.Key, p.Value, err)
		}
		if ts := res.GetExecutionMetadata().GetWorkerCompletedTimestamp(); ts == nil || time.Since(ts.AsTime()) > OfferMaxAge {
			out = append(out, p.Key+"="+p.Value)
		}
	}
	return out, nil
}
