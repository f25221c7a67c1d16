// Debian's nginx as a test's reverse proxy: started as the test user with its
// own prefix, configuration, logs and pid file in a temporary directory, on
// a port of its own, and stopped (with the directory removed) by `stop`.
import { spawn, spawnSync } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync, readFileSync, existsSync } from 'node:fs';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';

const nginxPath = process.env.NGINX || '/usr/sbin/nginx';

/** `n` ports the kernel hands out, released for servers to take. */
export async function freePorts(n) {
  const servers = await Promise.all(Array.from({ length: n }, () => new Promise((resolve) => {
    const s = net.createServer();
    s.listen(0, '127.0.0.1', () => resolve(s));
  })));
  const ports = servers.map((s) => s.address().port);
  await Promise.all(servers.map((s) => new Promise((r) => s.close(r))));
  return ports;
}

/**
 * Whether what listens on `port` is nginx: its answers carry its own
 * `Server` header (it hides the upstream's). A bare connect could reach
 * another program that took the port first, while this nginx is still
 * failing to bind it.
 */
function answersAsNginx(port) {
  return new Promise((resolve) => {
    let head = '';
    const s = net.connect(port, '127.0.0.1', () => s.write('HEAD / HTTP/1.0\r\nHost: 127.0.0.1\r\n\r\n'));
    s.setTimeout(2000, () => s.destroy());
    s.on('data', (d) => { head += d; });
    s.on('close', () => resolve(/^server: nginx/im.test(head)));
    s.on('error', () => {});
  });
}

/**
 * Starts nginx with `http` as the body of its http block (the test writes
 * its own upstreams and server); resolves to { dir, stop, errors() } once it
 * answers on `port`. Rejects if it exits first (a port already taken:
 * "Address already in use"), or does not answer within 20 s.
 */
export async function startNginx(http, port) {
  if (!existsSync(nginxPath)) throw new Error(`${nginxPath} is missing: apt-get install nginx`);
  const dir = mkdtempSync(path.join(os.tmpdir(), 'webterm-nginx-'));
  const conf = path.join(dir, 'nginx.conf');
  writeFileSync(conf, `
daemon off;
worker_processes 1;
pid ${dir}/nginx.pid;
error_log ${dir}/error.log info;
events { worker_connections 1024; }
http {
  access_log ${dir}/access.log;
  client_body_temp_path ${dir}/body;
  proxy_temp_path ${dir}/proxy;
  fastcgi_temp_path ${dir}/fastcgi;
  uwsgi_temp_path ${dir}/uwsgi;
  scgi_temp_path ${dir}/scgi;
  ${http}
}
`);
  const check = spawnSync(nginxPath, ['-t', '-p', dir, '-c', conf], { encoding: 'utf8' });
  if (check.status !== 0) throw new Error(`nginx -t: ${check.stderr}`);
  const proc = spawn(nginxPath, ['-p', dir, '-c', conf], { stdio: ['ignore', 'ignore', 'pipe'] });
  let stderr = '';
  proc.stderr.on('data', (c) => { stderr += c; });
  const exited = new Promise((resolve) => proc.on('exit', resolve));
  const deadline = Date.now() + 20000;
  for (;;) {
    const up = await answersAsNginx(port);
    if (up) break;
    if (proc.exitCode !== null || Date.now() > deadline) {
      const why = proc.exitCode !== null ? 'exited' : `did not answer on ${port}`;
      proc.kill('SIGKILL');
      await exited;
      const log = existsSync(`${dir}/error.log`) ? readFileSync(`${dir}/error.log`, 'utf8') : '';
      rmSync(dir, { recursive: true, force: true });
      throw new Error(`nginx ${why}: ${stderr}${log}`);
    }
    await new Promise((r) => setTimeout(r, 50));
  }
  return {
    dir,
    errors: () => (existsSync(`${dir}/error.log`) ? readFileSync(`${dir}/error.log`, 'utf8') : ''),
    async stop() {
      if (proc.exitCode === null) {
        proc.kill('SIGQUIT');
        await Promise.race([exited, new Promise((r) => setTimeout(r, 10000))]);
        if (proc.exitCode === null) proc.kill('SIGKILL');
      }
      rmSync(dir, { recursive: true, force: true });
    },
  };
}

/** nginx's usual WebSocket proxying: Upgrade and Connection passed on. */
export const WEBSOCKET_MAP = `
map $http_upgrade $connection_upgrade {
  default upgrade;
  '' close;
}`;
