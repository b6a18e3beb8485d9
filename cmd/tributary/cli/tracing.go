package cli

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"os"
	"strconv"
	"strings"

	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/codes"
	"go.opentelemetry.io/otel/exporters/otlp/otlptrace/otlptracegrpc"
	"go.opentelemetry.io/otel/exporters/otlp/otlptrace/otlptracehttp"
	"go.opentelemetry.io/otel/propagation"
	"go.opentelemetry.io/otel/sdk/resource"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/trace"

	"github.com/tributary/tributary/config"
)

// tracing is the sidecar's OpenTelemetry tracer provider, nil when
// tracing is off.
type tracing struct {
	provider *sdktrace.TracerProvider
	tracer   trace.Tracer
}

// tracingOn says whether the tracing section and the standard OTEL_*
// variables (OTEL_SDK_DISABLED, OTEL_TRACES_EXPORTER, the OTLP endpoints)
// turn tracing on, and with which protocol.
func tracingOn(tc config.TracingConfig, getenv func(string) string) (on bool, protocol string, err error) {
	if tc.Exporter == config.TracingNone || strings.EqualFold(getenv("OTEL_SDK_DISABLED"), "true") {
		return false, "", nil
	}
	on = tc.Exporter == config.TracingOTLP
	if !on {
		switch e := strings.TrimSpace(getenv("OTEL_TRACES_EXPORTER")); e {
		case "otlp":
			on = true
		case "", "none":
			on = e == "" && (getenv("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT") != "" || getenv("OTEL_EXPORTER_OTLP_ENDPOINT") != "")
		default:
			return false, "", fmt.Errorf("OTEL_TRACES_EXPORTER=%q: tributary exports traces over OTLP only; set it to otlp or none", e)
		}
	}
	if !on {
		return false, "", nil
	}
	protocol = tc.Protocol
	for _, k := range []string{"OTEL_EXPORTER_OTLP_TRACES_PROTOCOL", "OTEL_EXPORTER_OTLP_PROTOCOL"} {
		if protocol == "" {
			protocol = getenv(k)
		}
	}
	switch protocol {
	case "":
		protocol = "http/protobuf"
	case "http/protobuf", "grpc":
	default:
		return false, "", fmt.Errorf("OTLP protocol %q: use http/protobuf or grpc (tracing.protocol, OTEL_EXPORTER_OTLP_PROTOCOL)", protocol)
	}
	return true, protocol, nil
}

// newTracing builds the tracer provider the tracing section and the
// OTEL_* variables ask for, or nil when tracing is off. It does no I/O:
// the exporter connects when it first exports.
func newTracing(tc config.TracingConfig) (*tracing, error) {
	on, protocol, err := tracingOn(tc, os.Getenv)
	if err != nil || !on {
		return nil, err
	}
	ctx := context.Background()
	var exp sdktrace.SpanExporter
	if protocol == "grpc" {
		var opts []otlptracegrpc.Option
		if tc.Endpoint != "" {
			opts = append(opts, otlptracegrpc.WithEndpointURL(tc.Endpoint))
		}
		exp, err = otlptracegrpc.New(ctx, opts...)
	} else {
		var opts []otlptracehttp.Option
		if tc.Endpoint != "" {
			// A collector's base URL, as OTEL_EXPORTER_OTLP_ENDPOINT:
			// without a path, spans go to its /v1/traces.
			u := tc.Endpoint
			if p, err := url.Parse(u); err == nil && (p.Path == "" || p.Path == "/") {
				u = strings.TrimSuffix(u, "/") + "/v1/traces"
			}
			opts = append(opts, otlptracehttp.WithEndpointURL(u))
		}
		exp, err = otlptracehttp.New(ctx, opts...)
	}
	if err != nil {
		return nil, fmt.Errorf("tracing: OTLP exporter (%s): %w", protocol, err)
	}
	name := tc.ServiceName
	if name == "" {
		name = os.Getenv("OTEL_SERVICE_NAME")
	}
	if name == "" {
		name = "tributary"
	}
	res, err := resource.New(ctx, resource.WithFromEnv(), resource.WithTelemetrySDK(),
		resource.WithAttributes(attribute.String("service.name", name), attribute.String("service.version", Version)))
	if err != nil && !errors.Is(err, resource.ErrPartialResource) {
		return nil, fmt.Errorf("tracing: resource (OTEL_RESOURCE_ATTRIBUTES): %w", err)
	}
	opts := []sdktrace.TracerProviderOption{sdktrace.WithBatcher(exp), sdktrace.WithResource(res)}
	if os.Getenv("OTEL_TRACES_SAMPLER") == "" || tc.SampleRatio != 1 {
		// The configured ratio, unless only the environment names a
		// sampler: a change carrying a sampled trace context is always
		// followed.
		opts = append(opts, sdktrace.WithSampler(sdktrace.ParentBased(sdktrace.TraceIDRatioBased(tc.SampleRatio))))
	}
	tp := sdktrace.NewTracerProvider(opts...)
	return &tracing{provider: tp, tracer: tp.Tracer("github.com/tributary/tributary/cmd/tributary/cli")}, nil
}

// shutdown flushes the spans still queued, within ctx.
func (t *tracing) shutdown(ctx context.Context) error {
	if t == nil {
		return nil
	}
	if err := t.provider.Shutdown(ctx); err != nil {
		return fmt.Errorf("flush traces: %w", err)
	}
	return nil
}

// provider returns the tracer provider for the runtime, nil when off.
func (t *tracing) tracerProvider() trace.TracerProvider {
	if t == nil {
		return nil
	}
	return t.provider
}

// handler traces each request to next with a server span, a child of the
// request's own traceparent when it has one. The span's context replaces
// the request's traceparent and tracestate headers, so that a webhook
// connector, which keeps a delivery's headers with its change, makes the
// change's span a child of the request's.
func (t *tracing) handler(next http.Handler) http.Handler {
	if t == nil {
		return next
	}
	prop := propagation.TraceContext{}
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		ctx := prop.Extract(r.Context(), propagation.HeaderCarrier(r.Header))
		ctx, span := t.tracer.Start(ctx, r.Method+" "+r.URL.Path, trace.WithSpanKind(trace.SpanKindServer),
			trace.WithAttributes(
				attribute.String("http.request.method", r.Method),
				attribute.String("url.path", r.URL.Path),
			))
		defer span.End()
		r = r.WithContext(ctx)
		r.Header = r.Header.Clone()
		r.Header.Del("Tracestate")
		prop.Inject(ctx, propagation.HeaderCarrier(r.Header))
		rec := &statusRecorder{ResponseWriter: w, code: http.StatusOK}
		next.ServeHTTP(rec, r)
		span.SetAttributes(attribute.Int("http.response.status_code", rec.code))
		if rec.code >= 500 {
			span.SetStatus(codes.Error, strconv.Itoa(rec.code))
		}
	})
}

// statusRecorder remembers the status code written.
type statusRecorder struct {
	http.ResponseWriter
	code int
}

func (s *statusRecorder) WriteHeader(code int) {
	s.code = code
	s.ResponseWriter.WriteHeader(code)
}

// Unwrap lets http.ResponseController reach the writer's Flush and
// deadlines.
func (s *statusRecorder) Unwrap() http.ResponseWriter { return s.ResponseWriter }
