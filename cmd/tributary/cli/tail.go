package cli

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/signal"
	"sync"
	"syscall"
	"time"

	"github.com/ThreeDotsLabs/watermill/message"
	"github.com/spf13/cobra"

	"github.com/tributary/tributary/config"
	"github.com/tributary/tributary/core"
)

type tailOptions struct {
	file          string
	fromBeginning bool
	since         string
	types         []string
	limit         int
	deadLetter    bool
}

func newEventsCmd(reg *core.Registry) *cobra.Command {
	events := &cobra.Command{Use: "events", Short: "Read events from the configured stream"}
	var o tailOptions
	tail := &cobra.Command{
		Use:   "tail -c FILE",
		Short: "Print events from the configured stream as CloudEvents JSON, one per line",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			ctx, stop := signal.NotifyContext(cmd.Context(), os.Interrupt, syscall.SIGTERM)
			defer stop()
			return tailEvents(ctx, reg, o, cmd.OutOrStdout())
		},
	}
	tail.Flags().StringVarP(&o.file, "config", "c", "tributary.yaml", "configuration file")
	tail.Flags().BoolVar(&o.fromBeginning, "from-beginning", false, "start from the oldest retained event instead of new ones")
	tail.Flags().StringVar(&o.since, "since", "", "start from events published at or after this RFC 3339 time")
	tail.Flags().StringSliceVar(&o.types, "type", nil, "only events of this type (repeatable)")
	tail.Flags().IntVar(&o.limit, "limit", 0, "stop after this many events (0: until interrupted)")
	tail.Flags().BoolVar(&o.deadLetter, "dead-letter", false, "read the dead-letter topic instead")
	events.AddCommand(tail)
	return events
}

func tailEvents(ctx context.Context, reg *core.Registry, o tailOptions, out io.Writer) error {
	cfg, err := config.Load(o.file, reg)
	if err != nil {
		var cerr *config.Error
		if errors.As(err, &cerr) {
			return invalid(err)
		}
		return err
	}
	opts := core.SubscribeOptions{From: core.FromEnd}
	switch {
	case o.since != "":
		t, err := time.Parse(time.RFC3339, o.since)
		if err != nil {
			return invalid(fmt.Errorf("--since %q: not an RFC 3339 time such as 2026-01-02T15:04:05Z", o.since))
		}
		opts.From, opts.Since = core.FromTime, t
	case o.fromBeginning:
		opts.From = core.FromBeginning
	}
	topics, err := tailTopics(cfg, o)
	if err != nil {
		return invalid(err)
	}
	stream, err := cfg.Stream.NewStream(reg)
	if err != nil {
		return invalid(err)
	}
	log := slog.New(slog.NewTextHandler(io.Discard, nil))
	octx, cancel := context.WithTimeout(ctx, 30*time.Second)
	err = stream.Open(octx, core.Env{Name: "tail", Logger: log, StateDir: cfg.StateDir})
	cancel()
	if err != nil {
		return fmt.Errorf("open %s stream: %w", cfg.Stream.Type, err)
	}
	defer func() {
		cctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		_ = stream.Close(cctx)
	}()
	sub, err := stream.Subscriber(opts)
	if err != nil {
		return fmt.Errorf("subscribe: %w", err)
	}
	defer sub.Close()

	sctx, stop := context.WithCancel(ctx)
	defer stop()
	merged := make(chan *message.Message)
	var wg sync.WaitGroup
	for _, topic := range topics {
		ch, err := sub.Subscribe(sctx, topic)
		if err != nil {
			return fmt.Errorf("subscribe to topic %q: %w", topic, err)
		}
		wg.Go(func() {
			for m := range ch {
				select {
				case merged <- m:
				case <-sctx.Done():
					m.Nack()
					return
				}
			}
		})
	}
	go func() { wg.Wait(); close(merged) }()

	wanted := map[string]bool{}
	for _, t := range o.types {
		wanted[t] = true
	}
	n := 0
	for m := range merged {
		ev, err := core.EventFromMessage(m)
		m.Ack()
		if err != nil {
			fmt.Fprintf(os.Stderr, "skipping message %s: %v\n", m.UUID, err)
			continue
		}
		if len(wanted) > 0 && !wanted[ev.Type] && !o.deadLetter {
			continue
		}
		b, err := ev.MarshalStructured()
		if err != nil {
			return fmt.Errorf("encode event %s: %w", ev.ID, err)
		}
		if _, err := fmt.Fprintf(out, "%s\n", b); err != nil {
			return err
		}
		n++
		if o.limit > 0 && n >= o.limit {
			stop()
			break
		}
	}
	go func() {
		for m := range merged {
			m.Nack()
		}
	}()
	return nil
}

// tailTopics returns the topics holding the requested events.
func tailTopics(cfg *config.Config, o tailOptions) ([]string, error) {
	if o.deadLetter {
		return []string{cfg.Stream.DeadLetterTopic}, nil
	}
	if cfg.Stream.Topics.Mode == config.TopicsSingle {
		return []string{cfg.Stream.Topics.Name}, nil
	}
	types := o.types
	if len(types) == 0 {
		seen := map[string]bool{}
		for _, et := range cfg.Catalog {
			seen[et.Type] = true
			types = append(types, et.Type)
		}
		for _, c := range cfg.Connectors {
			for _, r := range c.Emit {
				if !seen[r.Type] {
					seen[r.Type] = true
					types = append(types, r.Type)
				}
			}
		}
	}
	if len(types) == 0 {
		return nil, fmt.Errorf("%s declares no event types to tail: add a catalog or pass --type", cfg.File)
	}
	topics := make([]string, 0, len(types))
	for _, t := range types {
		topics = append(topics, cfg.Stream.Topics.Topic(t))
	}
	return topics, nil
}
