package poll

import "context"

// fetch runs the Fetcher and calls process with each page, in order, from a
// second goroutine, so that the Fetcher reads (and the source system
// computes) the next page while this one is hashed, diffed and handed on.
// Pages are copied, since a Fetcher may reuse its slice; at most one waits
// while another is processed. An error from process stops the Fetcher and
// is returned; a Fetcher's error is returned once the pages read before it
// are processed.
func (s *Source) fetch(ctx context.Context, req Request, process func([]Record) error) error {
	fctx, cancel := context.WithCancelCause(ctx)
	defer cancel(nil)
	pages := make(chan []Record, 1)
	free := make(chan []Record, 2)
	done := make(chan struct{})
	var procErr error
	go func() {
		defer close(done)
		for page := range pages {
			if procErr == nil {
				if err := process(page); err != nil {
					procErr = err
					cancel(err)
				}
			}
			clear(page)
			select {
			case free <- page[:0]:
			default:
			}
		}
	}()
	err := s.cfg.Fetcher.Fetch(fctx, req, func(recs []Record) error {
		if len(recs) == 0 {
			return nil
		}
		var page []Record
		select {
		case page = <-free:
		default:
		}
		page = append(page[:0], recs...)
		select {
		case pages <- page:
			return nil
		case <-fctx.Done():
			return context.Cause(fctx)
		}
	})
	close(pages)
	<-done
	if procErr != nil {
		return procErr
	}
	return err
}
