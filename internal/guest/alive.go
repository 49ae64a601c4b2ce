package guest

import (
	"context"
	"fmt"
)

// Ping checks that the connection still answers, with one OpenSSH
// keepalive request, bounded by ctx. A daemon that keeps one connection
// per VM calls it before reusing a connection that was idle, and dials
// again when it fails.
func (c *Client) Ping(ctx context.Context) error {
	done := make(chan error, 1)
	go func() {
		// The answer does not matter (servers may refuse the request);
		// getting one does.
		_, _, err := c.conn.SendRequest("keepalive@openssh.com", true, nil)
		done <- err
	}()
	select {
	case err := <-done:
		if err != nil {
			return fmt.Errorf("pinging ssh at %s: %w", c.addr, err)
		}
		return nil
	case <-ctx.Done():
		return fmt.Errorf("pinging ssh at %s: %w", c.addr, ctx.Err())
	}
}

// Wait blocks until the connection is closed, by Close or because the
// guest went away, so that a cache of connections can drop it.
func (c *Client) Wait() error { return c.conn.Wait() }
