/**
 * The demo's help centre: 50 articles of an online shop, 10 topics in its 5 regional stores. The
 * regional versions differ where real ones would (delays, carriers, currencies, laws), so that a
 * question about one store ranks its article first.
 * @internal
 */
import type * as Rag from "../Rag.js"

interface Region {
  readonly code: string
  readonly currency: string
  readonly currencyName: string
  readonly refund: string
  readonly standard: string
  readonly cutoff: string
  readonly freeOver: number
  readonly returnDays: number
  readonly carrier: string
  readonly warranty: string
  readonly phone: string
  readonly bnpl: string
  readonly tax: string
  /** A sentence some topics add in this store only. */
  readonly extra: Partial<Record<string, string>>
}

const REGIONS: ReadonlyArray<Region> = [
  {
    code: "EU", currency: "€", currencyName: "euros", refund: "five working days", standard: "three to five working days", cutoff: "2 pm CET",
    freeOver: 50, returnDays: 30, carrier: "DHL", warranty: "two-year", phone: "+49 30 5550 1200", bnpl: "Klarna and PayPal Pay Later", tax: "include VAT",
    extra: {
      Refunds: "Orders paid by bank transfer are refunded to the account the transfer came from.",
      "Gift cards": "Where national law requires it, an unused balance under €5 is paid out on request."
    }
  },
  {
    code: "UK", currency: "£", currencyName: "pounds", refund: "three working days", standard: "two to four working days", cutoff: "1 pm",
    freeOver: 40, returnDays: 28, carrier: "Royal Mail", warranty: "two-year", phone: "+44 20 5550 1200", bnpl: "Klarna and Clearpay", tax: "include VAT",
    extra: { Refunds: "Items bought in a sale are refunded at the price you paid, not the current price." }
  },
  {
    code: "US", currency: "$", currencyName: "US dollars", refund: "seven business days", standard: "three to seven business days", cutoff: "noon Eastern",
    freeOver: 60, returnDays: 30, carrier: "UPS", warranty: "one-year", phone: "+1 212 555 0120", bnpl: "Affirm and Afterpay", tax: "exclude sales tax, which is added at checkout",
    extra: { Refunds: "Sales tax is refunded together with the item.", Shipping: "Alaska and Hawaii take two to three days longer." }
  },
  {
    code: "CA", currency: "C$", currencyName: "Canadian dollars", refund: "ten business days", standard: "four to eight business days", cutoff: "11 am Eastern",
    freeOver: 75, returnDays: 30, carrier: "Canada Post", warranty: "one-year", phone: "+1 416 555 0120", bnpl: "Affirm and PayPal Pay Later", tax: "exclude GST and HST, which are added at checkout",
    extra: {
      Refunds: "Refunds are paid in Canadian dollars, whatever currency your card uses, and the exchange rate is your bank's.",
      Shipping: "Remote postal codes in the territories can take up to three weeks."
    }
  },
  {
    code: "AU", currency: "A$", currencyName: "Australian dollars", refund: "five business days", standard: "three to six business days", cutoff: "noon AEST",
    freeOver: 80, returnDays: 30, carrier: "Australia Post", warranty: "two-year", phone: "+61 2 5550 1200", bnpl: "Afterpay and Zip", tax: "include GST",
    extra: { Warranty: "This is on top of your rights under the Australian Consumer Law." }
  }
]

const TOPICS: ReadonlyArray<readonly [string, (r: Region) => ReadonlyArray<string>]> = [
  ["Refunds", (r) => [
    `Refunds for damaged items are paid within ${r.refund} of the return reaching our warehouse.`,
    "The money goes back to the original payment method; gift card payments come back as a new gift card.",
    "Shipping costs are refunded too when the item arrived damaged or was not what you ordered.",
    "Your bank may take a few more days to show the refund on your statement.",
    `If a refund has not arrived after ${r.refund}, call ${r.phone} with your order number.`
  ]],
  ["Shipping", (r) => [
    `Standard shipping takes ${r.standard}; express shipping arrives the next working day when ordered before ${r.cutoff}.`,
    `Orders over ${r.currency}${r.freeOver} ship free.`,
    `Parcels are carried by ${r.carrier}, and large items by a two-person delivery team.`,
    "Items over 20 kg cannot be sent to parcel lockers.",
    "The delivery date shown at checkout already includes the time to pack your order."
  ]],
  ["Returns", (r) => [
    `Items can be returned within ${r.returnDays} days in their original packaging.`,
    `Print the prepaid return label from your account page and drop the parcel at any ${r.carrier} point.`,
    "Opened software, gift cards and personalised items cannot be returned.",
    "We email you when the return reaches the warehouse, usually within a week.",
    "A faulty item can be sent back under its warranty after the return period has ended."
  ]],
  ["Warranty", (r) => [
    `Electronics carry a ${r.warranty} warranty covering manufacturing defects.`,
    "Accidental damage, water damage and normal wear are not covered.",
    "To make a claim, describe the fault on the warranty page of your order and attach a photo or a short video.",
    "We repair the item, replace it, or refund it when neither is possible.",
    "A repaired item keeps the rest of its original warranty, or three months if that is longer."
  ]],
  ["Gift cards", (r) => [
    `Gift cards never expire and can be spent on anything in the ${r.code} store.`,
    "A gift card can be combined with one discount code per order.",
    "The balance is shown in your account and on the receipt of every order paid with the card.",
    "A lost gift card can be blocked and replaced if you still have the purchase receipt.",
    "Gift cards cannot be exchanged for cash."
  ]],
  ["Order tracking", (r) => [
    "Every order has a tracking link in its confirmation email.",
    "Tracking starts once the parcel leaves the warehouse, usually the working day after you order.",
    `${r.carrier} updates the tracking page at each depot the parcel passes.`,
    `If tracking has not changed for five working days, contact us and we open an investigation with ${r.carrier}.`,
    "You can change the delivery address until the parcel has left the warehouse."
  ]],
  ["Payment", (r) => [
    `We accept cards, bank transfers, ${r.bnpl}.`,
    "Cards are charged when the order ships, not when it is placed.",
    "A bank transfer must arrive within seven days, or the order is cancelled.",
    `Prices are in ${r.currencyName} and ${r.tax}.`,
    `The payments team answers payment questions on ${r.phone}.`
  ]],
  ["Exchanges", (r) => [
    "Exchanges for a different size or colour are free.",
    "Start the exchange from your account page and send the item back with the prepaid label.",
    `The new item ships as soon as the returned one is scanned at the ${r.carrier} depot.`,
    "If the new size is out of stock, we refund the item instead.",
    "Each order can be exchanged twice."
  ]],
  ["Damaged parcels", (r) => [
    "Photograph a damaged parcel before opening it and report it within 48 hours.",
    `Send the photos from the order page so that we can file the claim with ${r.carrier}.`,
    "We send a replacement or refund the damaged items as soon as the claim is filed, without waiting for the carrier.",
    "You do not need to keep the packaging once the photos are sent.",
    "A parcel that arrives open or wet can be refused at the door."
  ]],
  ["Loyalty points", (r) => [
    `Loyalty points are earned on every order, one point per ${r.currency === "£" ? "pound" : r.currency === "€" ? "euro" : "dollar"} spent.`,
    `One hundred points are worth ${r.currency}5 off a later order.`,
    "Points expire after 24 months without a purchase.",
    "Points earned on returned items are taken back when the refund is paid.",
    "Members get early access to sales and free express shipping in their birthday month."
  ]]
]

/** 50 articles, `kb-01` to `kb-50`: the 10 topics of the EU store, then the UK's, the US's, Canada's and Australia's. */
export const demoDocuments: ReadonlyArray<Rag.Document> = REGIONS.flatMap((region, r) =>
  TOPICS.map(([title, body], t) => {
    const extra = region.extra[title]
    return {
      docId: `kb-${String(r * TOPICS.length + t + 1).padStart(2, "0")}`,
      content: `${title} (${region.code} store)\n\n${[...body(region), ...(extra === undefined ? [] : [extra])].join(" ")}`
    }
  }))
