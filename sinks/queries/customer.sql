-- Single customer view: identifiers, merged ids, channels used, first and last touch, purchases and their value per channel.
-- Rows written under a customer id that was later merged count for the surviving customer.
-- param customer String = '': a customer id, a merged (alias) id or an identifier value; empty lists every customer
-- param limit UInt32 = 100: most customers listed
SELECT
    customer_id,
    identifiers,
    aliases,
    channels,
    first_touch_at,
    first_channel,
    last_touch_at,
    last_channel,
    touches,
    purchases,
    purchase_value,
    purchases_by_channel,
    value_by_channel,
    currencies
FROM single_customer_view
WHERE {customer:String} = ''
    OR customer_id = (
        SELECT coalesce(nullIf(any(survivor_id), ''), {customer:String})
        FROM customer_alias_map
        WHERE alias_id = {customer:String}
    )
    OR has(arrayMap(i -> i.2, identifiers), {customer:String})
ORDER BY last_touch_at DESC, customer_id
LIMIT {limit:UInt32}
