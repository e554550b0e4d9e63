package measure

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"os"
	"time"
)

// SaveCPUProfile asks the Go process serving net/http/pprof at base (e.g.
// "http://127.0.0.1:15014") for a CPU profile over d (whole seconds, at least one) and
// writes it to path. c nil means http.DefaultClient. It returns when the profile is
// written: d after the call, or earlier with an error.
func SaveCPUProfile(ctx context.Context, c *http.Client, base string, d time.Duration, path string) error {
	if c == nil {
		c = http.DefaultClient
	}
	url := fmt.Sprintf("%s/debug/pprof/profile?seconds=%d", base, max(1, int(d.Seconds())))
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		return fmt.Errorf("cpu profile: %w", err)
	}
	resp, err := c.Do(req)
	if err != nil {
		return fmt.Errorf("cpu profile: %w", err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("cpu profile: %s", resp.Status)
	}
	f, err := os.Create(path)
	if err != nil {
		return fmt.Errorf("cpu profile: %w", err)
	}
	if _, err := io.Copy(f, resp.Body); err != nil {
		f.Close()
		return fmt.Errorf("cpu profile: %w", err)
	}
	return f.Close()
}
