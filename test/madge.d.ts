// The part of madge's API the structure test uses (madge ships no types).
declare module 'madge' {
  interface MadgeResult {
    obj(): Record<string, string[]>;
    circular(): string[][];
  }
  function madge(path: string, config?: { fileExtensions?: string[] }): Promise<MadgeResult>;
  export = madge;
}
