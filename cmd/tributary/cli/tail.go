package cli

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/signal"
	"slices"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/ThreeDotsLabs/watermill/message"
	"github.com/spf13/cobra"

	"github.com/tributary/tributary/config"
	"github.com/tributary/tributary/core"
	"github.com/tributary/tributary/core/lifecycle"
)

type tailOptions struct {
	file          string
	fromBeginning bool
	since         string
	types         []string
	limit         int
	deadLetter    bool
	noFollow      bool
}

// storedSubscriber is the optional capability of a stream's subscriber that
// `events tail --no-follow` needs: SubscribeStored is Subscribe bounded to
// what the topic holds when it is called, its channel closed once the last
// of those messages is acked. The embedded and Kafka streams have it.
type storedSubscriber interface {
	SubscribeStored(ctx context.Context, topic string) (<-chan *message.Message, error)
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
	tail.Flags().StringVar(&o.since, "since", "", "start from events published at or after this time: an RFC 3339 time, or a duration back from now such as 10m or 2h")
	tail.Flags().StringSliceVar(&o.types, "type", nil, "only events of this type, one the configuration declares (repeatable)")
	tail.Flags().IntVar(&o.limit, "limit", 0, "stop after this many events (0: until interrupted)")
	tail.Flags().BoolVar(&o.deadLetter, "dead-letter", false, "read the dead-letter topic instead")
	tail.Flags().BoolVar(&o.noFollow, "no-follow", false, "print what the stream holds now and exit, instead of waiting for new events (from the beginning unless --since says otherwise)")
	events.AddCommand(tail, newSearchCmd(reg), newReplayCmd(reg))
	return events
}

// tailEvents prints the events o asks for, from the stream cfg configures,
// to out until ctx is done, o.limit are printed, or (--no-follow) the
// stored ones are.
func tailEvents(ctx context.Context, reg *core.Registry, o tailOptions, out io.Writer) error {
	cfg, err := config.Load(o.file, reg)
	if err != nil {
		var cerr *config.Error
		if errors.As(err, &cerr) {
			return invalid(err)
		}
		return err
	}
	opts, err := tailFrom(o, time.Now())
	if err != nil {
		return invalid(err)
	}
	topics, err := tailTopics(cfg, o)
	if err != nil {
		return invalid(err)
	}
	stream, err := openTailStream(ctx, cfg, reg)
	if err != nil {
		return err
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
	subscribe := sub.Subscribe
	if o.noFollow {
		ss, ok := sub.(storedSubscriber)
		if !ok {
			return invalid(fmt.Errorf("--no-follow: the %s stream cannot tell where its stored events end; leave --no-follow out and stop with --limit N or Ctrl-C", cfg.Stream.Type))
		}
		subscribe = ss.SubscribeStored
	}
	sctx, stop := context.WithCancel(ctx)
	defer stop()
	merged, err := mergeTopics(sctx, subscribe, topics)
	if err != nil {
		return err
	}
	return printEvents(merged, o, out, stop)
}

// tailFrom returns where in the stream tail starts: new events, the
// oldest retained (--from-beginning, and --no-follow), or those published
// since --since.
func tailFrom(o tailOptions, now time.Time) (core.SubscribeOptions, error) {
	opts := core.SubscribeOptions{From: core.FromEnd}
	switch {
	case o.since != "":
		t, err := parseInstant("--since", o.since, now)
		if err != nil {
			return opts, err
		}
		opts.From, opts.Since = core.FromTime, t
	case o.fromBeginning, o.noFollow:
		opts.From = core.FromBeginning
	}
	return opts, nil
}

// openTailStream opens the stream cfg configures, giving it 30 seconds.
// The caller closes it.
func openTailStream(ctx context.Context, cfg *config.Config, reg *core.Registry) (core.Stream, error) {
	stream, err := cfg.Stream.NewStream(reg)
	if err != nil {
		return nil, invalid(err)
	}
	log := slog.New(slog.NewTextHandler(io.Discard, nil))
	octx, cancel := context.WithTimeout(ctx, 30*time.Second)
	err = stream.Open(octx, core.Env{Name: "tail", Logger: log, StateDir: cfg.StateDir})
	cancel()
	if err != nil {
		return nil, fmt.Errorf("open %s stream: %w", cfg.Stream.Type, err)
	}
	return stream, nil
}

// mergeTopics subscribes to each topic and merges their messages into the
// channel it returns, closed once every subscription ends. Each topic's
// channel is read on its own goroutine and the events are printed as they
// arrive: in stream order within a topic (per partition on Kafka),
// interleaved across the per_type topics of several types. Cancelling ctx
// ends the goroutines, which nack the message they hold.
func mergeTopics(ctx context.Context, subscribe func(context.Context, string) (<-chan *message.Message, error), topics []string) (<-chan *message.Message, error) {
	merged := make(chan *message.Message)
	var wg sync.WaitGroup
	for _, topic := range topics {
		ch, err := subscribe(ctx, topic)
		if err != nil {
			return nil, fmt.Errorf("subscribe to topic %q: %w", topic, err)
		}
		wg.Go(func() {
			for m := range ch {
				select {
				case merged <- m:
				case <-ctx.Done():
					m.Nack()
					return
				}
			}
		})
	}
	go func() { wg.Wait(); close(merged) }()
	return merged, nil
}

// printEvents prints the events of merged that o asks for to out, as
// CloudEvents JSON, one per line, acking each message. Once o.limit are
// printed it calls stop, which ends the subscriptions, and nacks what
// merged still delivers.
func printEvents(merged <-chan *message.Message, o tailOptions, out io.Writer, stop context.CancelFunc) error {
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

// knownTypes returns the event types the configuration puts on the
// stream: its catalog's, then those its rules emit, then, when it
// declares entities, those the lifecycle tracker publishes; each once.
func knownTypes(cfg *config.Config) []string {
	var types []string
	seen := map[string]bool{}
	add := func(t string) {
		if !seen[t] {
			seen[t] = true
			types = append(types, t)
		}
	}
	for _, et := range cfg.Catalog {
		add(et.Type)
	}
	for _, c := range cfg.Connectors {
		for _, r := range c.Emit {
			add(r.Type)
		}
	}
	if len(cfg.Compiled.Lifecycle) > 0 {
		for _, t := range []string{lifecycle.TypeViolation, lifecycle.TypeStuck, lifecycle.TypeResolved} {
			add(t)
		}
	}
	return types
}

// checkTypes reports a --type the configuration does not declare: its
// events would never come, and tail would wait for them silently.
func checkTypes(cfg *config.Config, types []string) error {
	known := knownTypes(cfg)
	if len(types) > 0 && len(known) == 0 {
		return fmt.Errorf("--type %q: %s declares no event types (no catalog, no emit rules); tail with the configuration that declares them", types[0], cfg.File)
	}
	for _, t := range types {
		if slices.Contains(known, t) {
			continue
		}
		hint := ""
		if s := config.SuggestEventType(t, known); s != "" {
			hint = fmt.Sprintf(" (did you mean %q?)", s)
		}
		return fmt.Errorf("--type %q: not an event type %s declares%s; known types: %s", t, cfg.File, hint, strings.Join(known, ", "))
	}
	return nil
}

// tailTopics returns the topics holding the requested events.
func tailTopics(cfg *config.Config, o tailOptions) ([]string, error) {
	if err := checkTypes(cfg, o.types); err != nil {
		return nil, err
	}
	if o.deadLetter {
		return []string{cfg.Stream.DeadLetterTopic}, nil
	}
	if cfg.Stream.Topics.Mode == config.TopicsSingle {
		return []string{cfg.Stream.Topics.Name}, nil
	}
	types := o.types
	if len(types) == 0 {
		types = knownTypes(cfg)
	}
	if len(types) == 0 {
		return nil, fmt.Errorf("%s declares no event types to tail (no catalog, no emit rules): add a catalog of the types on the stream", cfg.File)
	}
	topics := make([]string, 0, len(types))
	for _, t := range types {
		topics = append(topics, cfg.Stream.Topics.Topic(t))
	}
	return topics, nil
}
