package node

import (
	"fmt"
	"sync"

	"github.com/ipfs/kubo/plugin/loader"
)

var (
	pluginsOnce sync.Once
	pluginsErr  error
)

// loadPlugins registers kubo's preloaded datastore and codec plugins. A second
// loader in the same process fails with `already have a datastore named
// "badgerds"`, so it runs once.
func loadPlugins() error {
	pluginsOnce.Do(func() {
		l, err := loader.NewPluginLoader("")
		if err != nil {
			pluginsErr = fmt.Errorf("loading kubo plugins: %w", err)
			return
		}
		if err := l.Initialize(); err != nil {
			pluginsErr = fmt.Errorf("initialising kubo plugins: %w", err)
			return
		}
		if err := l.Inject(); err != nil {
			pluginsErr = fmt.Errorf("injecting kubo plugins: %w", err)
		}
	})
	return pluginsErr
}
