package plugin_test

import (
	"context"
	"strconv"
	"testing"
	"time"

	connplugin "github.com/tributary/tributary/connectors/plugin"
	"github.com/tributary/tributary/core"
	"github.com/tributary/tributary/core/memstream"
	"github.com/tributary/tributary/core/runtime"
)

// BenchmarkPluginThroughput measures changes per second through the runtime
// into the in-memory stream from one connector, a generator of 10-field
// rows: compiled in, as a plugin over gRPC, and as a plugin over JSON
// Lines. The plugins are this test binary (see TestMain), so the three
// run the same source code. Run with a fixed count, such as
//
//	go test ./connectors/plugin -run '^$' -bench PluginThroughput -benchtime 200000x
func BenchmarkPluginThroughput(b *testing.B) {
	cases := []struct {
		name string
		new  func(b *testing.B, n int) core.Source
	}{
		{name: "inprocess", new: func(b *testing.B, n int) core.Source {
			src := &testSource{}
			if err := src.Configure(core.NewConfig("bench", map[string]any{"generate": n, "batch": 256})); err != nil {
				b.Fatal(err)
			}
			return src
		}},
		{name: "grpc", new: pluginBench("grpc")},
		{name: "jsonl", new: pluginBench("jsonl")},
	}
	for _, c := range cases {
		b.Run(c.name, func(b *testing.B) {
			src := c.new(b, b.N)
			st := memstream.New()
			rt, err := runtime.New(runtime.Options{
				Stream:     st,
				Connectors: []runtime.Connector{{Name: "bench", Type: "bench", Source: src, Mapper: mapper("bench")}},
				StateDir:   b.TempDir(),
			})
			if err != nil {
				b.Fatal(err)
			}
			want := strconv.Itoa(b.N)
			ctx, cancel := context.WithCancel(context.Background())
			done := make(chan error, 1)
			b.ResetTimer()
			start := time.Now()
			go func() { done <- rt.Run(ctx) }()
			for {
				cp, ok, _ := st.Checkpoints().Load(ctx, "bench")
				if ok && string(cp.Position.Data) == want {
					break
				}
				time.Sleep(time.Millisecond)
			}
			elapsed := time.Since(start)
			b.StopTimer()
			cancel()
			if err := <-done; err != nil {
				b.Fatal(err)
			}
			b.ReportMetric(float64(b.N)/elapsed.Seconds(), "changes/s")
		})
	}
}

func pluginBench(transport string) func(b *testing.B, n int) core.Source {
	return func(b *testing.B, n int) core.Source {
		cfg := self(b, transport, map[string]any{"generate": n, "batch": 1000})
		cfg["credits"] = 4000
		src := connplugin.New()
		if err := src.Configure(core.NewConfig("bench", cfg)); err != nil {
			b.Fatal(err)
		}
		return src
	}
}

// BenchmarkPluginRead measures changes per second across the plugin
// boundary alone: Read and Ack on the source, as the runtime calls them,
// without mapping or publishing. The in-process case calls the same
// generator directly.
//
//	go test ./connectors/plugin -run '^$' -bench PluginRead -benchtime 1000000x
func BenchmarkPluginRead(b *testing.B) {
	cases := []struct {
		name string
		new  func(b *testing.B, n int) core.Source
	}{
		{name: "inprocess", new: func(b *testing.B, n int) core.Source {
			src := &testSource{}
			if err := src.Configure(core.NewConfig("bench", map[string]any{"generate": n, "batch": 1000})); err != nil {
				b.Fatal(err)
			}
			return src
		}},
		{name: "grpc", new: pluginBench("grpc")},
		{name: "jsonl", new: pluginBench("jsonl")},
	}
	for _, c := range cases {
		b.Run(c.name, func(b *testing.B) {
			src := c.new(b, b.N)
			ctx, cancel := context.WithTimeout(context.Background(), 10*time.Minute)
			defer cancel()
			b.ResetTimer()
			start := time.Now()
			if err := src.Open(ctx, core.Env{StateDir: b.TempDir()}, core.Position{}); err != nil {
				b.Fatal(err)
			}
			for got := 0; got < b.N; {
				batch, err := src.Read(ctx)
				if err != nil {
					b.Fatal(err)
				}
				got += len(batch)
				if err := src.Ack(ctx, batch[len(batch)-1].Position); err != nil {
					b.Fatal(err)
				}
			}
			elapsed := time.Since(start)
			b.StopTimer()
			if err := src.Close(ctx); err != nil {
				b.Fatal(err)
			}
			b.ReportMetric(float64(b.N)/elapsed.Seconds(), "changes/s")
		})
	}
}
