// A live trace: a kernel trace session whose ring batches are aggregated as
// they arrive. rotate() cuts the stream into intervals for views that show
// windows (top, serve). Every command that traces goes through this.
import { TraceSession, SessionOptions } from '../kernel/session';
import { Aggregator, AggregatorOptions } from './aggregate';

export type LiveTraceOptions = Omit<SessionOptions, 'onBatch'> & AggregatorOptions;

export class LiveTrace {
  /** Where events go now; rotate() swaps in a fresh one. */
  aggregator: Aggregator;
  readonly session: TraceSession;
  private constructor(opts: LiveTraceOptions) {
    this.aggregator = new Aggregator(opts);
    this.session = TraceSession.start({ ...opts, onBatch: (buf, count) => this.aggregator.consume(buf, count) });
  }

  static start(opts: LiveTraceOptions = {}): LiveTrace {
    return new LiveTrace(opts);
  }

  /** Returns the aggregator filled so far and continues into a fresh one. */
  rotate(): Aggregator {
    const done = this.aggregator;
    this.session.drain();
    this.aggregator = done.fresh();
    return done;
  }

  stop(): void {
    this.session.stop();
  }
}
