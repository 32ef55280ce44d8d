package files

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"net"
	"net/http"
	"slices"
	"strings"
	"syscall"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/aws/ratelimit"
	"github.com/aws/aws-sdk-go-v2/aws/retry"
	awshttp "github.com/aws/aws-sdk-go-v2/aws/transport/http"
	"github.com/aws/aws-sdk-go-v2/config"
	"github.com/aws/aws-sdk-go-v2/credentials"
	"github.com/aws/aws-sdk-go-v2/service/s3"
	"github.com/aws/aws-sdk-go-v2/service/s3/types"
	"github.com/aws/smithy-go"
	smithyhttp "github.com/aws/smithy-go/transport/http"

	"github.com/furrow-io/furrow/internal/loader"
)

// DefaultPartSize is the size of the parts of a multipart upload, and
// the largest object S3 stores with a single PutObject.
const DefaultPartSize = 16 << 20

// minPartSize is S3's smallest part (but the last).
const minPartSize = 5 << 20

// S3Options configure an S3 store. The names in error messages are those
// of the s3 destination's configuration (bucket, prefix, region,
// endpoint, path_style, access_key_id, secret_access_key).
type S3Options struct {
	// Bucket is the bucket's name (required).
	Bucket string
	// Prefix holds every key of the store: key k is the object
	// Prefix/k. "" is the bucket's root; "/" is added if missing.
	Prefix string
	// Region is the bucket's region. Empty takes the AWS configuration's
	// (AWS_REGION, ~/.aws/config), or us-east-1 with an Endpoint.
	Region string
	// Endpoint is the URL of an S3-compatible server ("" is AWS).
	Endpoint string
	// PathStyle puts the bucket in the URL's path rather than its host
	// name, as many S3-compatible servers need.
	PathStyle bool
	// AccessKeyID and SecretAccessKey are static credentials: both or
	// neither. Without them the standard AWS chain applies (environment,
	// shared files, SSO, web identity, container and instance roles).
	AccessKeyID, SecretAccessKey string
	// Timeout is the longest wait for the server's answer to a request
	// once it is sent (default 1m); connecting has 10s.
	Timeout time.Duration
	// PartSize is the size of multipart parts (DefaultPartSize; at least
	// 5 MiB). Bodies up to PartSize go in one PutObject.
	PartSize int
}

// S3 is a Store in an S3 bucket (or an S3-compatible server's). Put
// sends a body of up to PartSize bytes with one PutObject, a larger one
// as a multipart upload of PartSize parts: either way S3 shows the
// object only once it is complete, and a failed multipart upload is
// aborted. List pages through ListObjectsV2.
//
// Errors: throttling (SlowDown, 503), 5xx, timeouts, refused or lost
// connections wrap loader.ErrRetryable, after the SDK's own three
// attempts. Refused credentials, a missing bucket or permission are
// permanent, and their message names the setting to fix; no message
// holds the secret.
type S3 struct {
	client   *s3.Client
	bucket   string
	prefix   string
	partSize int
	// checksums asks S3 for CRC32 checksums of objects and parts (AWS).
	// S3-compatible servers (an Endpoint) do not all know them: there
	// the SDK sends them only when an operation requires them.
	checksums bool
	// maxKeys is ListObjectsV2's page size; 0 is the server's (1000).
	maxKeys int32
}

var _ Store = (*S3)(nil)

// OpenS3 builds the client. It does not reach the server: the first
// request does (files.Open reads the state object).
func OpenS3(ctx context.Context, o S3Options) (*S3, error) {
	if o.Bucket == "" {
		return nil, errors.New("files: s3: bucket is required")
	}
	if strings.ContainsAny(o.Bucket, "/:") {
		return nil, fmt.Errorf("files: s3: bucket %q is not a bucket name (no s3:// and no path: put the path in prefix)", o.Bucket)
	}
	if (o.AccessKeyID == "") != (o.SecretAccessKey == "") {
		return nil, errors.New("files: s3: set both access_key_id and secret_access_key, or neither (the standard AWS credential chain)")
	}
	pfx := strings.Trim(o.Prefix, "/")
	if pfx != "" {
		if err := checkPath(pfx); err != nil {
			return nil, fmt.Errorf("files: s3: prefix %q: %w", o.Prefix, err)
		}
		pfx += "/"
	}
	if o.Timeout == 0 {
		o.Timeout = time.Minute
	}
	switch {
	case o.PartSize == 0:
		o.PartSize = DefaultPartSize
	case o.PartSize < minPartSize:
		return nil, fmt.Errorf("files: s3: part size %d is below S3's minimum of 5 MiB", o.PartSize)
	}

	hc := awshttp.NewBuildableClient().
		WithDialerOptions(func(d *net.Dialer) { d.Timeout = 10 * time.Second }).
		WithTransportOptions(func(t *http.Transport) { t.ResponseHeaderTimeout = o.Timeout })
	opts := []func(*config.LoadOptions) error{
		config.WithHTTPClient(hc),
		// A few quick attempts; the destination's runner retries an
		// outage with its own backoff. No client-side retry quota: an
		// outage would turn into "quota exceeded" errors.
		config.WithRetryer(func() aws.Retryer {
			return retry.NewStandard(func(so *retry.StandardOptions) {
				so.MaxAttempts = 3
				so.MaxBackoff = time.Second
				so.RateLimiter = ratelimit.None
			})
		}),
	}
	if o.Region != "" {
		opts = append(opts, config.WithRegion(o.Region))
	}
	if o.AccessKeyID != "" {
		opts = append(opts, config.WithCredentialsProvider(credentials.NewStaticCredentialsProvider(o.AccessKeyID, o.SecretAccessKey, "")))
	}
	if o.Endpoint != "" {
		opts = append(opts,
			config.WithRequestChecksumCalculation(aws.RequestChecksumCalculationWhenRequired),
			config.WithResponseChecksumValidation(aws.ResponseChecksumValidationWhenRequired))
	}
	cfg, err := config.LoadDefaultConfig(ctx, opts...)
	if err != nil {
		return nil, fmt.Errorf("files: s3: AWS configuration: %w", err)
	}
	if cfg.Region == "" {
		if o.Endpoint == "" {
			return nil, errors.New("files: s3: no region: set region (or AWS_REGION)")
		}
		cfg.Region = "us-east-1"
	}
	if cfg.Credentials != nil {
		cfg.Credentials = markCredentials{cfg.Credentials}
	}
	client := s3.NewFromConfig(cfg, func(so *s3.Options) {
		so.UsePathStyle = o.PathStyle
		if o.Endpoint != "" {
			so.BaseEndpoint = aws.String(o.Endpoint)
		}
	})
	return &S3{client: client, bucket: o.Bucket, prefix: pfx, partSize: o.PartSize, checksums: o.Endpoint == ""}, nil
}

// markCredentials marks the errors of the credential chain, so that they
// read as a credentials problem rather than an outage.
type markCredentials struct{ p aws.CredentialsProvider }

func (m markCredentials) Retrieve(ctx context.Context) (aws.Credentials, error) {
	c, err := m.p.Retrieve(ctx)
	if err != nil {
		return c, &credentialsError{err}
	}
	return c, nil
}

type credentialsError struct{ err error }

func (e *credentialsError) Error() string { return "no AWS credentials: " + e.err.Error() }
func (e *credentialsError) Unwrap() error { return e.err }

// Put implements Store.
func (s *S3) Put(ctx context.Context, key string, r io.Reader) error {
	if err := checkKey(key); err != nil {
		return err
	}
	// A seekable body of known size goes as it is (files' objects).
	if b, ok := r.(interface {
		io.ReadSeeker
		Len() int
	}); ok && b.Len() <= s.partSize {
		return s.putObject(ctx, key, b, b.Len())
	}
	buf := make([]byte, s.partSize)
	n, err := io.ReadFull(r, buf)
	switch {
	case errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF):
		return s.putObject(ctx, key, bytes.NewReader(buf[:n]), n)
	case err != nil:
		return fmt.Errorf("files: s3 put %s: read body: %w", s.where(key), err)
	}
	// A full part: one more byte tells whether there is a second.
	var one [1]byte
	m, err := io.ReadFull(r, one[:])
	if m == 0 {
		if err != nil && !errors.Is(err, io.EOF) {
			return fmt.Errorf("files: s3 put %s: read body: %w", s.where(key), err)
		}
		return s.putObject(ctx, key, bytes.NewReader(buf), n)
	}
	return s.multipart(ctx, key, buf, one[0], r)
}

func (s *S3) putObject(ctx context.Context, key string, body io.ReadSeeker, n int) error {
	in := &s3.PutObjectInput{
		Bucket:        &s.bucket,
		Key:           aws.String(s.prefix + key),
		Body:          body,
		ContentLength: aws.Int64(int64(n)),
	}
	if s.checksums {
		in.ChecksumAlgorithm = types.ChecksumAlgorithmCrc32
	}
	if _, err := s.client.PutObject(ctx, in); err != nil {
		return s.fail(ctx, "put", key, err)
	}
	return nil
}

// multipart uploads buf (a full part), then the byte next and the rest
// of r, in parts of partSize, and completes the upload; on failure it
// aborts it, so that no part lingers (and is billed).
func (s *S3) multipart(ctx context.Context, key string, buf []byte, next byte, r io.Reader) error {
	full := s.prefix + key
	cin := &s3.CreateMultipartUploadInput{Bucket: &s.bucket, Key: &full}
	if s.checksums {
		cin.ChecksumAlgorithm = types.ChecksumAlgorithmCrc32
	}
	up, err := s.client.CreateMultipartUpload(ctx, cin)
	if err != nil {
		return s.fail(ctx, "put", key, err)
	}
	abort := func(err error) error {
		// The caller's context may be what failed: abort on a fresh one.
		actx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 30*time.Second)
		defer cancel()
		s.client.AbortMultipartUpload(actx, &s3.AbortMultipartUploadInput{Bucket: &s.bucket, Key: &full, UploadId: up.UploadId})
		return err
	}
	var parts []types.CompletedPart
	part, carry, last := buf, []byte{next}, false
	for num := int32(1); ; num++ {
		pin := &s3.UploadPartInput{
			Bucket: &s.bucket, Key: &full, UploadId: up.UploadId, PartNumber: aws.Int32(num),
			Body: bytes.NewReader(part), ContentLength: aws.Int64(int64(len(part))),
		}
		if s.checksums {
			pin.ChecksumAlgorithm = types.ChecksumAlgorithmCrc32
		}
		out, err := s.client.UploadPart(ctx, pin)
		if err != nil {
			return abort(s.fail(ctx, "put", key, err))
		}
		parts = append(parts, types.CompletedPart{PartNumber: aws.Int32(num), ETag: out.ETag, ChecksumCRC32: out.ChecksumCRC32})
		if last {
			break
		}
		// The next part: the carried byte, then what r has.
		part = buf[:copy(buf, carry)]
		n, err := io.ReadFull(r, buf[len(part):])
		part = buf[:len(part)+n]
		switch {
		case errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF):
			last = true
		case err != nil:
			return abort(fmt.Errorf("files: s3 put %s: read body: %w", s.where(key), err))
		default:
			var one [1]byte
			m, err := io.ReadFull(r, one[:])
			if err != nil && !errors.Is(err, io.EOF) {
				return abort(fmt.Errorf("files: s3 put %s: read body: %w", s.where(key), err))
			}
			carry, last = one[:m], m == 0
		}
	}
	_, err = s.client.CompleteMultipartUpload(ctx, &s3.CompleteMultipartUploadInput{
		Bucket: &s.bucket, Key: &full, UploadId: up.UploadId,
		MultipartUpload: &types.CompletedMultipartUpload{Parts: parts},
	})
	if err != nil {
		return abort(s.fail(ctx, "put", key, err))
	}
	return nil
}

// Get implements Store.
func (s *S3) Get(ctx context.Context, key string) ([]byte, error) {
	if err := checkKey(key); err != nil {
		return nil, err
	}
	out, err := s.client.GetObject(ctx, &s3.GetObjectInput{Bucket: &s.bucket, Key: aws.String(s.prefix + key)})
	if err != nil {
		if notFound(err) {
			return nil, fmt.Errorf("files: s3 get %s: %w", s.where(key), fs.ErrNotExist)
		}
		return nil, s.fail(ctx, "get", key, err)
	}
	defer out.Body.Close()
	b, err := io.ReadAll(out.Body)
	if err != nil {
		return nil, s.fail(ctx, "get", key, err)
	}
	return b, nil
}

// List implements Store: the keys under prefix (relative to the
// store's Prefix), sorted.
func (s *S3) List(ctx context.Context, prefix string) ([]string, error) {
	var keys []string
	in := &s3.ListObjectsV2Input{Bucket: &s.bucket, Prefix: aws.String(s.prefix + prefix)}
	if s.maxKeys > 0 {
		in.MaxKeys = aws.Int32(s.maxKeys)
	}
	p := s3.NewListObjectsV2Paginator(s.client, in)
	for p.HasMorePages() {
		page, err := p.NextPage(ctx)
		if err != nil {
			return nil, s.fail(ctx, "list", prefix, err)
		}
		for _, o := range page.Contents {
			k, ok := strings.CutPrefix(aws.ToString(o.Key), s.prefix)
			if ok && k != "" && !strings.HasSuffix(k, "/") { // "folder" markers are not objects
				keys = append(keys, k)
			}
		}
	}
	slices.Sort(keys)
	return keys, nil
}

// Delete implements Store.
func (s *S3) Delete(ctx context.Context, key string) error {
	if err := checkKey(key); err != nil {
		return err
	}
	_, err := s.client.DeleteObject(ctx, &s3.DeleteObjectInput{Bucket: &s.bucket, Key: aws.String(s.prefix + key)})
	if err != nil && !notFound(err) {
		return s.fail(ctx, "delete", key, err)
	}
	return nil
}

func (s *S3) where(key string) string { return "s3://" + s.bucket + "/" + s.prefix + key }

func notFound(err error) bool {
	var nsk *types.NoSuchKey
	var ae smithy.APIError
	if errors.As(err, &nsk) {
		return true
	}
	return errors.As(err, &ae) && (ae.ErrorCode() == "NoSuchKey" || ae.ErrorCode() == "NotFound")
}

// Error codes S3 answers for a load it sheds or a fault of its own.
var retryableCodes = map[string]bool{
	"SlowDown": true, "ServiceUnavailable": true, "InternalError": true, "RequestTimeout": true,
	"Throttling": true, "ThrottlingException": true, "RequestThrottled": true, "TooManyRequests": true,
	"TooManyRequestsException": true, "RequestLimitExceeded": true, "BandwidthLimitExceeded": true,
	"OperationAborted": true,
}

// fail names what failed and classifies it: retryable (an outage,
// throttling), or permanent with the setting to fix.
func (s *S3) fail(ctx context.Context, op, key string, err error) error {
	where := s.where(key)
	if op == "list" {
		where = fmt.Sprintf("s3://%s/%s%s*", s.bucket, s.prefix, key)
	}
	head := fmt.Sprintf("files: s3 %s %s", op, where)
	switch ctx.Err() {
	case context.Canceled: // the caller gave up: not the server's doing
		return fmt.Errorf("%s: %w", head, err)
	case context.DeadlineExceeded: // the caller's timeout
		return loader.Retryable(fmt.Errorf("%s: timed out: %w", head, err))
	}
	var ce *credentialsError
	if errors.As(err, &ce) {
		return fmt.Errorf("%s: %w (set access_key_id and secret_access_key, or configure the AWS credential chain: AWS_ACCESS_KEY_ID, ~/.aws, an IAM role)", head, err)
	}
	var ae smithy.APIError
	if errors.As(err, &ae) {
		code := ae.ErrorCode()
		switch code {
		case "SignatureDoesNotMatch":
			return fmt.Errorf("%s: the server refused the request's signature (SignatureDoesNotMatch): check secret_access_key (or the secret the AWS credential chain found) and that it belongs to access_key_id: %w", head, err)
		case "InvalidAccessKeyId", "XAdminUserNotFound": // the latter is versitygw's
			return fmt.Errorf("%s: the server does not know the access key (%s): check access_key_id (or the credentials the AWS credential chain found), and endpoint: %w", head, code, err)
		case "AccessDenied", "AllAccessDisabled", "AccountProblem", "InvalidToken", "ExpiredToken":
			return fmt.Errorf("%s: access denied (%s): the credentials need s3:PutObject, s3:GetObject, s3:DeleteObject on %s* and s3:ListBucket on bucket %s: %w", head, code, "s3://"+s.bucket+"/"+s.prefix, s.bucket, err)
		case "NoSuchBucket":
			return fmt.Errorf("%s: bucket %q does not exist (NoSuchBucket): check bucket, and region or endpoint: %w", head, s.bucket, err)
		case "PermanentRedirect", "AuthorizationHeaderMalformed", "IllegalLocationConstraintException":
			return fmt.Errorf("%s: bucket %q is in another region (%s): check region: %w", head, s.bucket, code, err)
		}
		if retryableCodes[code] {
			return loader.Retryable(fmt.Errorf("%s: %w", head, err))
		}
	}
	var se *smithyhttp.RequestSendError
	var ne net.Error
	if errors.As(err, &se) || errors.As(err, &ne) || errors.Is(err, context.DeadlineExceeded) ||
		errors.Is(err, io.ErrUnexpectedEOF) || errors.Is(err, syscall.ECONNREFUSED) ||
		errors.Is(err, syscall.ECONNRESET) || errors.Is(err, syscall.EPIPE) {
		return loader.Retryable(fmt.Errorf("%s: cannot reach the server (check endpoint if this lasts): %w", head, err))
	}
	var re *awshttp.ResponseError
	if errors.As(err, &re) && re.HTTPStatusCode() != 0 {
		if c := re.HTTPStatusCode(); c >= 500 || c == http.StatusTooManyRequests || c == http.StatusRequestTimeout {
			return loader.Retryable(fmt.Errorf("%s: %w", head, err))
		}
		return fmt.Errorf("%s: %w", head, err)
	}
	return fmt.Errorf("%s: %w", head, err)
}
