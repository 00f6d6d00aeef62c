package main

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"net"
	"os"
	"strings"

	"github.com/ssid/ssid-anchor/anchor"
	"github.com/ssid/ssid-anchor/anchor/pinning"
	"github.com/ssid/ssid-anchor/anchor/tree"
	"github.com/ssid/ssid-anchor/node"
)

// remoteService is one entry of remote_pinning.services; anchor/pinning
// owns its definition and rules.
type remoteService = pinning.Service

// applianceConfig is the --config file (SPEC 4.6). Every key has a default;
// unknown keys are errors.
type applianceConfig struct {
	Paths         tree.Paths    `json:"paths"`
	Anchor        anchor.Config `json:"anchor"`
	Node          node.Config   `json:"node"`
	RemotePinning struct {
		Services []remoteService `json:"services"`
	} `json:"remote_pinning"`
	Schedule struct {
		Quarterly string `json:"quarterly"`
		Telemetry string `json:"telemetry"`
	} `json:"schedule"`
	HTTP struct {
		Listen      string `json:"listen"`
		AllowRemote bool   `json:"allow_remote"`
	} `json:"http"`
}

func defaultApplianceConfig() applianceConfig {
	var c applianceConfig
	c.Paths = tree.DefaultPaths()
	c.Anchor = anchor.DefaultConfig()
	c.Node = node.Config{Profile: node.ProfileAirGapped, Swarm: []string{}, Peering: []string{}}
	c.RemotePinning.Services = []remoteService{}
	c.Schedule.Quarterly = "0 9 1 1,4,7,10 *"
	c.HTTP.Listen = "127.0.0.1:8089"
	return c
}

// loadApplianceConfig reads path over the defaults. A missing file is fine
// unless the user named it explicitly.
func loadApplianceConfig(path string, explicit bool) (applianceConfig, error) {
	c := defaultApplianceConfig()
	b, err := os.ReadFile(path)
	if errors.Is(err, fs.ErrNotExist) && !explicit {
		return c, nil
	}
	if err != nil {
		return c, usagef("reading config %s: %v", path, err)
	}
	if err := decodeStrict(b, &c); err != nil {
		return c, usagef("config %s: %v", path, err)
	}
	if err := c.validate(); err != nil {
		return c, usagef("config %s: %v", path, err)
	}
	return c, nil
}

// decodeStrict decodes JSON refusing unknown keys, and turns the decoder's
// error into one that names the line.
func decodeStrict(b []byte, v any) error {
	dec := json.NewDecoder(bytes.NewReader(b))
	dec.DisallowUnknownFields()
	err := dec.Decode(v)
	if err == nil {
		return nil
	}
	var se *json.SyntaxError
	var te *json.UnmarshalTypeError
	switch {
	case errors.As(err, &se):
		return fmt.Errorf("line %d: %v", lineOf(b, se.Offset), se)
	case errors.As(err, &te):
		return fmt.Errorf("line %d: key %q: expected %s, got %s", lineOf(b, te.Offset), te.Field, te.Type, te.Value)
	case strings.HasPrefix(err.Error(), "json: unknown field"):
		return fmt.Errorf("%s (remove it or fix its spelling)", strings.TrimPrefix(err.Error(), "json: "))
	}
	return err
}

func lineOf(b []byte, off int64) int {
	if off > int64(len(b)) {
		off = int64(len(b))
	}
	return bytes.Count(b[:off], []byte("\n")) + 1
}

func (c applianceConfig) validate() error {
	if err := c.Paths.Validate(); err != nil {
		return err
	}
	if err := c.Anchor.Validate(); err != nil {
		return err
	}
	if err := c.Node.Validate(); err != nil {
		return err
	}
	if err := pinning.ValidateServices(c.RemotePinning.Services); err != nil {
		return err
	}
	if c.HTTP.Listen != "" && !c.HTTP.AllowRemote {
		host, _, err := net.SplitHostPort(c.HTTP.Listen)
		if err != nil {
			return fmt.Errorf("http.listen: %q is not host:port", c.HTTP.Listen)
		}
		if ip := net.ParseIP(host); host != "localhost" && (ip == nil || !ip.IsLoopback()) {
			return fmt.Errorf("http.listen: %q is not a loopback address; set http.allow_remote to true to serve it", c.HTTP.Listen)
		}
	}
	return nil
}
