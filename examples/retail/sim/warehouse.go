package sim

import (
	"bytes"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"time"
)

// warehouse is the warehouse SaaS: its old REST endpoint POST
// /warehouse/picking takes a billed order (JSON with order_id), and a
// while later it reports the order picked and then shipped, as signed
// Standard Webhooks deliveries to cfg.WebhookURL. A billed order it has
// seen already (the same webhook-id again, or the same order) is
// acknowledged and not picked twice.
type warehouse struct {
	cfg    Config
	client *http.Client
	mu     sync.Mutex
	orders map[string]int // order id: deliveries received
	timers sync.WaitGroup
	done   chan struct{}
	once   sync.Once
}

func newWarehouse(cfg Config) *warehouse {
	return &warehouse{cfg: cfg, client: &http.Client{Timeout: 10 * time.Second}, orders: map[string]int{}, done: make(chan struct{})}
}

func (wh *warehouse) routes(mux *http.ServeMux) {
	mux.HandleFunc("POST /warehouse/picking", wh.picking)
}

func (wh *warehouse) picking(w http.ResponseWriter, r *http.Request) {
	var body struct {
		OrderID string `json:"order_id"`
	}
	if err := json.NewDecoder(io.LimitReader(r.Body, 1<<20)).Decode(&body); err != nil || body.OrderID == "" {
		http.Error(w, `{"error":"a JSON body with order_id"}`, http.StatusBadRequest)
		return
	}
	wh.mu.Lock()
	wh.orders[body.OrderID]++
	first := wh.orders[body.OrderID] == 1
	wh.mu.Unlock()
	if first {
		wh.timers.Go(func() { wh.fulfil(body.OrderID) })
	}
	w.WriteHeader(http.StatusAccepted)
}

// fulfil picks and ships an order, reporting each step.
func (wh *warehouse) fulfil(order string) {
	for _, step := range []struct {
		after time.Duration
		body  map[string]any
	}{
		{wh.cfg.PickAfter, map[string]any{"type": "item.picked", "data": map[string]any{"order_id": order, "bin": "A-" + strconv.Itoa(len(order)%9)}}},
		{wh.cfg.ShipAfter, map[string]any{"type": "parcel.shipped", "data": map[string]any{"order_id": order, "carrier": "DHL", "tracking": "JD" + strings.ToUpper(strings.ReplaceAll(order, "-", ""))}}},
	} {
		select {
		case <-time.After(step.after):
		case <-wh.done:
			return
		}
		step.body["timestamp"] = time.Now().UTC().Format(time.RFC3339Nano)
		id := "msg_" + order + "_" + step.body["type"].(string)
		for attempt := 0; ; attempt++ {
			err := wh.send(id, step.body)
			if err == nil {
				break
			}
			wh.cfg.Logger.Warn("warehouse webhook failed; retrying", "id", id, "err", err)
			select {
			case <-time.After(time.Duration(min(attempt+1, 10)) * 200 * time.Millisecond):
			case <-wh.done:
				return
			}
		}
	}
}

// send posts one Standard Webhooks delivery.
func (wh *warehouse) send(id string, body map[string]any) error {
	payload, err := json.Marshal(body)
	if err != nil {
		return err
	}
	ts := strconv.FormatInt(time.Now().Unix(), 10)
	key, err := base64.StdEncoding.DecodeString(strings.TrimPrefix(wh.cfg.WebhookSecret, "whsec_"))
	if err != nil {
		return fmt.Errorf("webhook secret: %w", err)
	}
	mac := hmac.New(sha256.New, key)
	mac.Write([]byte(id + "." + ts + "."))
	mac.Write(payload)
	req, err := http.NewRequest(http.MethodPost, wh.cfg.WebhookURL, bytes.NewReader(payload))
	if err != nil {
		return err
	}
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("webhook-id", id)
	req.Header.Set("webhook-timestamp", ts)
	req.Header.Set("webhook-signature", "v1,"+base64.StdEncoding.EncodeToString(mac.Sum(nil)))
	resp, err := wh.client.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	_, _ = io.Copy(io.Discard, resp.Body)
	if resp.StatusCode/100 != 2 {
		return fmt.Errorf("answered %s", resp.Status)
	}
	return nil
}

func (wh *warehouse) received() map[string]int {
	wh.mu.Lock()
	defer wh.mu.Unlock()
	out := make(map[string]int, len(wh.orders))
	for k, v := range wh.orders {
		out[k] = v
	}
	return out
}

func (wh *warehouse) stop() {
	wh.once.Do(func() { close(wh.done) })
	wh.timers.Wait()
}
