package remote

import (
	"bytes"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/config"
	"github.com/aws/aws-sdk-go-v2/service/s3"
)

func TestS3(t *testing.T) {
	root := startS3(t)
	makeBucket(t, "team-cache")
	suite{
		open: func(t *testing.T, opts Options) Backend {
			b, err := Open(t.Context(), "s3://team-cache/smelt/v1", opts)
			if err != nil {
				t.Fatal(err)
			}
			return b
		},
		corrupt: func(t *testing.T, ns Namespace, id ID, raw []byte) {
			// versitygw's posix backend keeps an object as a file.
			p := filepath.Join(root, "team-cache", "smelt", "v1", filepath.FromSlash(blobPath(ns, id)))
			os.MkdirAll(filepath.Dir(p), 0o755)
			if err := os.WriteFile(p, raw, 0o644); err != nil {
				t.Fatal(err)
			}
		},
		hasRequests: 2, // one listing page holds the whole small remote
	}.run(t)
}

// TestS3HasListing: the listing and the HEADs after it agree with what is
// stored, whether the listing covers the batch or stops early. Pages of
// 100 keys stand for S3's 1,000, to keep the test short.
func TestS3HasListing(t *testing.T) {
	startS3(t)
	makeBucket(t, "listing")
	var stats Stats
	b, err := Open(t.Context(), "s3://listing/p", Options{Stats: &stats})
	if err != nil {
		t.Fatal(err)
	}
	b.(*s3Backend).listPage = 100
	defer func() { S3ListBudget = nil }()
	refs := make([]Ref, 100)
	for i := range 150 {
		data := []byte(fmt.Sprintf("stored %d", i))
		if i < len(refs) {
			refs[i] = Ref{ID: hashOf([]byte(fmt.Sprintf("stored %d", 2*i))), Size: 1}
		}
		put(t, b, Objects, hashOf(data), data)
	}
	// Blobs in another namespace must not count.
	for i := range 30 {
		data := []byte(fmt.Sprintf("layer %d", i))
		put(t, b, Layers, hashOf(data), data)
	}
	for _, tc := range []struct {
		budget      int
		maxRequests int64
	}{
		{0, 100}, // HEADs only
		{1, 50},  // one page covers 2/3 of the range: the rest by HEAD
		{2, 2},   // two pages cover all 150 keys
		{100, 2}, // the listing ends by itself
	} {
		S3ListBudget = func(int) int { return tc.budget }
		n0 := stats.Requests.Load()
		has, err := b.Has(t.Context(), Objects, refs)
		if err != nil {
			t.Fatal(err)
		}
		n := stats.Requests.Load() - n0
		for i, h := range has {
			if h != (2*i < 150) {
				t.Fatalf("budget %d: Has[%d] = %v; want %v", tc.budget, i, h, 2*i < 150)
			}
		}
		if n > tc.maxRequests {
			t.Errorf("budget %d: %d requests; want at most %d", tc.budget, n, tc.maxRequests)
		}
		t.Logf("budget %d: %d requests", tc.budget, n)
	}
}

// TestS3ReadOnly: credentials that may read but not write (a pull
// request's) read the cache, and a push gives an error that says so.
func TestS3ReadOnly(t *testing.T) {
	startS3(t)
	makeBucket(t, "team")
	data := []byte(`{"record":{}}`)
	ref := Ref{ID: hashOf(data), Size: int64(len(data))}
	rw, err := Open(t.Context(), "s3://team/c", Options{})
	if err != nil {
		t.Fatal(err)
	}
	put(t, rw, Results, ref.ID, data)
	// A user "ro" whom a bucket policy lets read and list.
	endpoint := os.Getenv("AWS_ENDPOINT_URL_S3")
	out, err := exec.Command(versitygwPath(), "admin", "-a", "smeltkey", "-s", "smeltsecret", "--er", endpoint,
		"create-user", "--access", "ro", "--secret", "rosecret", "--role", "user").CombinedOutput()
	if err != nil {
		t.Fatalf("versitygw admin create-user: %v\n%s", err, out)
	}
	cfg, err := config.LoadDefaultConfig(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	policy := `{"Version":"2012-10-17","Statement":[{"Effect":"Allow","Principal":{"AWS":["ro"]},` +
		`"Action":["s3:GetObject","s3:ListBucket"],"Resource":["arn:aws:s3:::team","arn:aws:s3:::team/*"]}]}`
	_, err = s3.NewFromConfig(cfg, func(o *s3.Options) { o.UsePathStyle = true }).PutBucketPolicy(t.Context(),
		&s3.PutBucketPolicyInput{Bucket: aws.String("team"), Policy: aws.String(policy)})
	if err != nil {
		t.Fatalf("put bucket policy: %v", err)
	}
	t.Setenv("AWS_ACCESS_KEY_ID", "ro")
	t.Setenv("AWS_SECRET_ACCESS_KEY", "rosecret")
	ro, err := Open(t.Context(), "s3://team/c", Options{})
	if err != nil {
		t.Fatal(err)
	}
	if got, err := getVerified(ro, Results, Ref{ID: ref.ID, Size: -1}); err != nil || !bytes.Equal(got, data) {
		t.Fatalf("read with read-only credentials: %q, %v", got, err)
	}
	if has, err := ro.Has(t.Context(), Results, []Ref{ref}); err != nil || !has[0] {
		t.Fatalf("Has with read-only credentials: %v, %v", has, err)
	}
	other := []byte(`{"other":1}`)
	err = ro.Put(t.Context(), Results, Ref{ID: hashOf(other), Size: int64(len(other))}, bytes.NewReader(other))
	if err == nil || !strings.Contains(err.Error(), "may write") {
		t.Fatalf("Put with read-only credentials: %v; want an error saying they may not write", err)
	}
	t.Log(err)
}

func TestS3NoBucket(t *testing.T) {
	startS3(t)
	b, err := Open(t.Context(), "s3://no-such-bucket/x", Options{})
	if err != nil {
		t.Fatal(err)
	}
	data := []byte("x")
	err = b.Put(t.Context(), Results, Ref{ID: hashOf(data), Size: 1}, bytes.NewReader(data))
	if err == nil {
		t.Fatal("Put into a missing bucket succeeded")
	}
	t.Log(err)
}

func TestS3Down(t *testing.T) {
	t.Setenv("AWS_ACCESS_KEY_ID", "k")
	t.Setenv("AWS_SECRET_ACCESS_KEY", "s")
	t.Setenv("AWS_REGION", "us-east-1")
	t.Setenv("AWS_ENDPOINT_URL_S3", "")
	downTests(t, func(addr string) string {
		os.Setenv("AWS_ENDPOINT_URL_S3", "http://"+addr)
		return "s3://bucket/prefix"
	})
}

// TestS3HasMeasure compares the two ways to ask S3 which of a batch of
// objects it holds, on remotes of growing size; it informs listPages.
// SMELT_MEASURE=1 runs it.
func TestS3HasMeasure(t *testing.T) {
	if os.Getenv("SMELT_MEASURE") == "" {
		t.Skip("a measurement: SMELT_MEASURE=1 runs it")
	}
	startS3(t)
	makeBucket(t, "measure")
	b, err := Open(t.Context(), "s3://measure/p", Options{})
	if err != nil {
		t.Fatal(err)
	}
	stats := b.(*s3Backend).opts.Stats
	defer func() { S3ListBudget = nil }()
	stored := 0
	for _, remoteSize := range []int{1000, 5000, 20000} {
		for ; stored < remoteSize; stored++ {
			data := []byte(fmt.Sprintf("stored %d", stored))
			put(t, b, Objects, hashOf(data), data)
		}
		for _, batch := range []int{100, 1000} {
			refs := make([]Ref, batch)
			for i := range refs {
				data := []byte(fmt.Sprintf("stored %d", i*2)) // half present
				refs[i] = Ref{ID: hashOf(data), Size: int64(len(data))}
			}
			for _, how := range []string{"HeadObject", "ListObjectsV2", "adaptive"} {
				switch how {
				case "HeadObject":
					S3ListBudget = func(int) int { return 0 }
				case "ListObjectsV2":
					S3ListBudget = func(int) int { return 1 << 20 }
				default:
					S3ListBudget = nil
				}
				n0 := stats.Requests.Load()
				start := time.Now()
				if _, err := b.Has(t.Context(), Objects, refs); err != nil {
					t.Fatal(err)
				}
				t.Logf("remote %6d objects, batch %5d, %-13s: %5d requests, %s", remoteSize, batch, how, stats.Requests.Load()-n0, time.Since(start).Round(time.Millisecond))
			}
		}
	}
}
