-- European Central Bank euro reference rates: one row per business day and currency.
-- rate is units of the currency per 1 EUR, with every digit the ECB published.
CREATE TABLE ecb_rate (
    day      date NOT NULL,
    currency char(3) NOT NULL CHECK (currency ~ '^[A-Z]{3}$'),
    rate     numeric NOT NULL CHECK (rate > 0),
    -- serves the nearest business day at or before a date, one day's rates, and ranges
    PRIMARY KEY (day, currency)
);

-- serves "is this a currency we have ever published" and one currency over time
CREATE INDEX ecb_rate_currency_day_idx ON ecb_rate (currency, day);
