/** The current time, injectable so decisions can be tested with frozen time. */
export type Clock = () => Date;

export const systemClock: Clock = () => new Date();
