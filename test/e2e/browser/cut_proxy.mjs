// A TCP proxy for file_manager_more.mjs's resume section: it cuts an upload
// mid-way the way a dropped network would.

import net from 'node:net';

// A TCP proxy in front of the server that counts what the browser sends and,
// once armed, cuts the connection that carries the `limit`th byte and then
// holds every new connection whose first request is not a GET (the page's
// retries) until it closes. GETs (the reload, its script and style) always
// pass.
export function startProxy(serverPort) {
  return new Promise((resolve, reject) => {
    const conns = new Set();
    const held = new Set();
    let mode = 'pass';  // pass | armed | holding
    let limit = 0, counted = 0, cutResolve;
    const p = {
      fromBrowser: 0, cutAt: 0,
      cut: new Promise((r) => { cutResolve = r; }),
      cutAfter(n) { limit = n; counted = 0; mode = 'armed'; },
      get held() { return held.size; },
      // New connections pass again; the held ones stay held until their
      // page goes away (a reload closes them), so the old page's retry
      // cannot resume the upload behind the test's back.
      pass() { mode = 'pass'; },
      close() { for (const c of [...conns, ...held]) c.destroy(); srv.close(); },
    };
    const relay = (client, first) => {
      const up = net.connect(serverPort, '127.0.0.1');
      conns.add(client);
      up.on('error', () => client.destroy());
      client.on('error', () => up.destroy());
      up.on('close', () => { client.destroy(); conns.delete(client); });
      client.on('close', () => { up.destroy(); conns.delete(client); });
      up.pipe(client);
      const forward = (data) => {
        p.fromBrowser += data.length;
        if (mode === 'armed') {
          counted += data.length;
          if (counted >= limit) {
            mode = 'holding';
            p.cutAt = counted;
            for (const c of conns) c.destroy();
            cutResolve();
            return;
          }
        }
        up.write(data);
      };
      if (first) forward(first);
      client.on('data', forward);
    };
    const srv = net.createServer((client) => {
      if (mode !== 'holding') return relay(client, null);
      // Holding: look at the first request line.
      client.once('data', (data) => {
        if (mode !== 'holding' || data.subarray(0, 4).toString('latin1') === 'GET ') return relay(client, data);
        held.add(client);
        client.on('close', () => held.delete(client));
      });
      client.on('error', () => {});
    });
    srv.on('error', reject);
    srv.listen(0, '127.0.0.1', () => { p.port = srv.address().port; resolve(p); });
  });
}
