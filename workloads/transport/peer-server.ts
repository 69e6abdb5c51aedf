// Accepts peer links. A link is handed to the role only once its Hello arrived.
import { EventEmitter } from 'node:events';
import net from 'node:net';
import { DEFAULT_LINK_OPTIONS, PeerLink, type LinkOptions, type PeerIdentity } from './peer-link.js';

export class PeerServer extends EventEmitter<{ link: [PeerLink] }> {
  private readonly server: net.Server;
  readonly links = new Set<PeerLink>();

  constructor(private readonly self: PeerIdentity, private readonly options: LinkOptions = DEFAULT_LINK_OPTIONS) {
    super();
    this.server = net.createServer((socket) => this.accept(socket));
  }

  listen(port: number, host: string): Promise<string> {
    return new Promise((resolve, reject) => {
      this.server.once('error', reject);
      this.server.listen(port, host, () => {
        const address = this.server.address() as net.AddressInfo;
        resolve(`${host}:${address.port}`);
      });
    });
  }

  async close(): Promise<void> {
    for (const link of this.links) link.close();
    await new Promise<void>((resolve) => this.server.close(() => resolve()));
  }

  private accept(socket: net.Socket): void {
    const link = new PeerLink(socket, this.self, this.options, false);
    this.links.add(link);
    link.once('close', () => this.links.delete(link));
    link.once('hello', () => this.emit('link', link));
  }
}
