// The ipvs_estimation probe on its own BPF object (bpf/ipvs.bpf.c), sharing
// the tracer's ring and drop counters, so a missing or departing ip_vs never
// breaks the rest. Follows ip_vs being loaded and unloaded while tracing.
import { BpfError } from '../base/errors';
import { ipvsInstance, ipvsSymbols } from '../host/ipvs';
import { Kallsyms } from '../host/kallsyms';
import { NativeBpfObject } from './addon';
import { AttachPref, Choice, chooseIpvsMode, DirectMode, Features, isDirect } from './ladder';
import { loadObject } from './loader';
import { DIRECT_PROGRAMS, Flavour, inactiveStatus, ProbeStatus, tracepointStatus } from './probes';

/** How often ip_vs being loaded or unloaded is noticed. */
const IPVS_POLL_MS = 2000;

export interface IpvsContext {
  features: Features;
  kallsyms: Kallsyms | undefined;
  pref: AttachPref;
  /** Whether the probe may hold ip_vs loaded (ladder.ts: chooseIpvsMode). */
  holdModule: boolean;
  flavour: Flavour;
  /** The tracer's ring buffer and drop counter, by fd. */
  ringFd: number;
  dropsFd: number;
  note(text: string): void;
}

export class IpvsProbe {
  status: ProbeStatus;
  private obj: NativeBpfObject | undefined;
  private timer: NodeJS.Timeout | undefined;

  /** `onTracepoints`: the status the tracer's timer hooks give this probe (the fallback rung). */
  constructor(
    private readonly ctx: IpvsContext,
    choice: Choice,
    private readonly onTracepoints: ProbeStatus,
  ) {
    this.status = this.apply(choice);
  }

  /** Attaches the chosen rung; a direct rung that fails falls to the timer tracepoints. */
  private apply(choice: Choice): ProbeStatus {
    if (choice.mode === null) return inactiveStatus(choice.reason);
    if (!isDirect(choice.mode)) return { ...this.onTracepoints, reason: choice.reason || this.onTracepoints.reason };
    const mode: DirectMode = choice.mode;
    try {
      this.obj = loadObject({
        object: 'ipvs',
        autoload: (p) => DIRECT_PROGRAMS.ipvs_estimation[mode].includes(p),
        reuseMaps: { events: this.ctx.ringFd, drops: this.ctx.dropsFd },
        start: (o) => DIRECT_PROGRAMS.ipvs_estimation[mode].forEach((p) => o.attach(p)),
      });
      return { active: true, via: mode, mode, reason: choice.reason || null, hooks: [`${mode}:estimation_timer`] };
    } catch (e) {
      if (!(e instanceof BpfError)) throw e;
      this.ctx.note(`ipvs_estimation: ${mode} failed (${e.message}); using timer tracepoints filtered on estimation_timer`);
      return tracepointStatus('ipvs_estimation', this.ctx.flavour, `${mode} failed: ${e.code}`);
    }
  }

  /**
   * Polls /sys/module/ip_vs: loaded while tracing, the probe attaches; unloaded,
   * it goes inactive. Unloaded and loaded again between two polls is a new
   * module instance (a kprobe on the old one is gone): attached again too.
   */
  follow(): void {
    let loaded = ipvsInstance();
    this.timer = setInterval(() => {
      const now = ipvsInstance();
      if (now === loaded) return;
      const wasLoaded = loaded !== null;
      loaded = now;
      this.closeObject();
      if (now === null) {
        this.ctx.note('ip_vs was unloaded while tracing: ipvs_estimation went inactive');
        this.status = inactiveStatus('ip_vs was unloaded while tracing');
        return;
      }
      const choice = chooseIpvsMode(this.ctx.features, ipvsSymbols(this.ctx.kallsyms), this.ctx.pref, this.ctx.holdModule);
      const how = wasLoaded ? 'unloaded and loaded again' : 'loaded';
      this.ctx.note(`ip_vs was ${how} while tracing: ipvs_estimation ${choice.mode ? `attached (${choice.mode})` : `stays inactive (${choice.reason})`}`);
      this.status = this.apply(choice);
    }, IPVS_POLL_MS);
    this.timer.unref();
  }

  private closeObject(): void {
    this.obj?.close();
    this.obj = undefined;
  }

  close(): void {
    clearInterval(this.timer);
    this.closeObject();
  }
}
