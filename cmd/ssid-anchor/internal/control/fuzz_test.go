package control

import (
	"bytes"
	"encoding/binary"
	"reflect"
	"testing"
)

// FuzzReadFrame feeds the control socket's frame reader what any process of
// the daemon's user can send: the daemon decodes one request frame per
// connection (MaxRequest), the client the daemon's frames (MaxFrame). No
// input may panic, a length over the limit must be refused before anything
// is allocated for it, and a request that decodes must survive a round
// trip through writeFrame unchanged.
func FuzzReadFrame(f *testing.F) {
	frame := func(body string) []byte {
		b := binary.BigEndian.AppendUint32(nil, uint32(len(body)))
		return append(b, body...)
	}
	f.Add(frame(`{"version":1,"argv":["ssid-anchor","--repo","/r","status","--"],"cwd":"/","env":{"K":"v"}}`))
	f.Add(frame(`{"version":1,"argv":["ssid-anchor","--json=true","event","status"]}`))
	f.Add(frame(`{"stream":"stdout","data":"aGk="}`))
	f.Add(frame(`{"exit":130}`))
	f.Add(frame(`null`))
	f.Add([]byte{0xff, 0xff, 0xff, 0xff})
	f.Add([]byte{0, 0, 0, 10, '{'})
	f.Fuzz(func(t *testing.T, in []byte) {
		var req Request
		err := readFrame(bytes.NewReader(in), &req, MaxRequest)
		if len(in) >= 4 && binary.BigEndian.Uint32(in) > MaxRequest && err == nil {
			t.Fatalf("a frame claiming %d bytes was accepted over the %d byte limit", binary.BigEndian.Uint32(in), MaxRequest)
		}
		if err == nil {
			var buf bytes.Buffer
			if err := writeFrame(&buf, req); err != nil {
				t.Fatalf("re-encoding a decoded request: %v", err)
			}
			var again Request
			if err := readFrame(&buf, &again, MaxRequest); err != nil {
				t.Fatalf("reading back a request written by writeFrame: %v", err)
			}
			if !reflect.DeepEqual(req, again) {
				t.Fatalf("round trip changed the request:\n%#v\n%#v", req, again)
			}
		}
		var fr Frame
		_ = readFrame(bytes.NewReader(in), &fr, MaxFrame)
	})
}
